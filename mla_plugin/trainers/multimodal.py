"""The training loop every method shares, registered as the MMF trainer ``multimodal``.

Per batch the model yields one or more :class:`~mla_plugin.core.hooks.Step` (one joint
step for the baselines; one per scheduled modality for MLA).  For each::

    forward (under autocast) -> zero_grad -> (scaled) loss.backward()
              -> average gradients over ranks (training.grad_sync: one flat all-reduce,
                 or DistributedDataParallel during the backward) -> unscale (fp16)
              -> hooks.on_before_optimizer_step (MLA's HGM, OGM-GE)
              -> clip the gradient norm (training.clip_gradients) -> optimizer.step()
              -> hooks.on_after_optimizer_step (QMF's history)

The hooks are the model's (``training_hooks()``) followed by the user's, listed by name
in ``training.hooks`` (:func:`mla_plugin.core.hooks.build_hooks`); every moment they
are called at is listed in :mod:`mla_plugin.core.hooks`.

``training.precision`` (fp32 | bf16 | fp16, :mod:`mla_plugin.core.precision`),
``training.channels_last``, ``training.pin_memory``, ``training.progress_bar`` and
``training.log_interval`` are read in the set-up; their defaults are in
``mla_bridge/defaults.yaml``.

After each epoch (or every ``training.evaluation_interval`` updates) the model is
evaluated and selected (:mod:`~mla_plugin.trainers.evaluation`), after each epoch a
checkpoint written (:mod:`~mla_plugin.trainers.checkpointing`); training stops at
``max_epochs``, ``max_updates`` or ``early_stop``
(:mod:`~mla_plugin.trainers.loop_options`), and the run ends by writing ``metrics.json``
in the save directory.
"""

import dataclasses
import math
import os
import random
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
from mmf.common.batch_collator import BatchCollator
from mmf.common.registry import registry
from mmf.common.sample import SampleList
from mmf.trainers.base_trainer import BaseTrainer
from mmf.utils.build import build_model, build_optimizer, build_scheduler
from mmf.utils.logger import Logger
from omegaconf import OmegaConf, open_dict
from tqdm import tqdm

from mla_plugin.builders.mmf_samples import adapt_for_trainer
from mla_plugin.config_validation import validate
from mla_plugin.core.distributed import (
    check_grad_sync,
    ddp_steps,
    same_on_all_ranks,
    wrap_for_grad_sync,
)
from mla_plugin.core.encoders import use_channels_last
from mla_plugin.core.hooks import build_hooks, hook_names
from mla_plugin.core.precision import BOOL_HINT, MixedPrecision, resolve_precision
from mla_plugin.models.mmf_adapter import MMFModelAdapter, needs_adapter
from mla_plugin.trainers.checkpointing import CheckpointingMixin
from mla_plugin.trainers.evaluation import (
    SELECTIONS,
    EvaluationMixin,
    format_metrics,
    majority,
)
from mla_plugin.trainers.loop_options import EarlyStopping, stop_limits
from mla_plugin.trainers.preflight import check_data, dry_forward
from mla_plugin.trainers.records import RecordsMixin
from mla_plugin.trainers.sampler import EpochSampler
from mla_plugin.trainers.tensorboard import TensorBoardLog
from mla_plugin.utils.io import atomic_torch_save, atomic_write_json


def _flatten_state(state):
    if isinstance(state, dict):
        for v in state.values():
            yield from _flatten_state(v)
    elif isinstance(state, (list, tuple)):
        for v in state:
            yield from _flatten_state(v)
    else:
        yield state


@registry.register_trainer("multimodal")
class MultimodalTrainer(CheckpointingMixin, EvaluationMixin, RecordsMixin, BaseTrainer):
    """MMF trainer for MLA and the baselines: set-up and the training loop (see the
    module docstring)."""

    # ----------------------------------------------------------------- set-up
    def load(self):
        cfg = self.config
        self.run_type = cfg.get("run_type", "train")
        self.rank = dist.get_rank() if dist.is_initialized() else 0
        self.world = dist.get_world_size() if dist.is_initialized() else 1
        self.device = self._pick_device()
        registry.register("current_device", self.device)
        self.writer = registry.get("writer", no_warning=True) or Logger(cfg)
        # the run folder (a new one unless env.save_dir is given), its lock, the resume
        # checks and config.yaml (mla_plugin/trainers/records.py)
        self.save_dir = self._open_record()
        self.tensorboard = TensorBoardLog(  # defaults: mla_bridge/defaults.yaml
            cfg.training.tensorboard, cfg.env.tensorboard_logdir, self.save_dir, self.rank
        )
        self.seed = self._seed_everything(cfg.training.seed)
        self.dataset_name = cfg.datasets.split(",")[0]
        self._validate_config()
        self._read_loop_options()
        self.selection = cfg.protocol.selection  # default: mla_plugin/configs/protocol.yaml
        if self.selection not in SELECTIONS:
            raise ValueError(
                f"protocol.selection: {self.selection!r} is not one of {list(SELECTIONS)}"
            )
        self._load_datasets()
        self._load_model_and_optimizer()
        dry_forward(self)  # one batch per split through the model, before training
        self._init_loop_state()
        self.epoch, self.batch_in_epoch, self.iteration, self.num_updates = 0, 0, 0, 0
        self.skipped_steps = 0  # fp16 steps the GradScaler skipped (inf/nan gradients)
        self.best = {"value": -math.inf, "update": None, "epoch": None}
        self._resume()

    def _validate_config(self):
        """Unknown keys, wrong types and unset values in the plugin's sections stop the
        run here, before any data is read (:mod:`mla_plugin.config_validation`)."""
        model_cls = registry.get_model_class(self.config.model)
        if model_cls is None:
            raise ValueError(
                f"no model named {self.config.model!r} is registered; registered: "
                f"{', '.join(sorted(registry.mapping['model_name_mapping']))}"
            )
        builder_cls = registry.get_builder_class(self.dataset_name)
        if builder_cls is None:
            raise ValueError(
                f"no dataset builder named {self.dataset_name!r} is registered; "
                f"registered: {', '.join(sorted(registry.mapping['builder_name_mapping']))}"
            )
        validate(self.config, model_cls, builder_cls)
        check_grad_sync(model_cls, str(self.config.training.grad_sync))
        self.builder_cls = builder_cls

    def _read_loop_options(self):
        """Precision, memory format, pinning, progress bar and log interval (defaults:
        mla_bridge/defaults.yaml); a bad value stops the run here, naming its key."""
        t = self.config.training
        self.precision = resolve_precision(t.precision, t.fp16)
        self.amp = MixedPrecision(self.precision, self.device)
        for key in ("channels_last", "pin_memory"):
            if not isinstance(t[key], bool):
                raise ValueError(f"training.{key}: {t[key]!r} must be a bool ({BOOL_HINT})")
        self.channels_last, self.pin_memory = t.channels_last, t.pin_memory
        progress = t.progress_bar
        if progress not in ("auto", True, False):
            raise ValueError(
                f"training.progress_bar: {progress!r} is not one of auto, true, false ({BOOL_HINT})"
            )
        if progress == "auto":
            progress = sys.stdout.isatty()  # off under the leaderboard (captured output)
        self.show_progress = bool(progress) and self.rank == 0
        # user hooks by name (default []: mla_bridge/defaults.yaml), built here so a bad
        # entry stops the run before any data is read
        hooks = t.hooks
        if not OmegaConf.is_list(hooks):
            raise ValueError(
                f"training.hooks: {hooks!r} must be a list of hook names or "
                "{type: <name>, params: {...}} mappings (MMF's command line reads Python "
                "literals: training.hooks=\"['grad_norm']\")"
            )
        self.user_hooks = build_hooks(OmegaConf.to_container(hooks, resolve=True))
        self.log_interval = t.log_interval
        if not isinstance(self.log_interval, int) or self.log_interval < 0:
            raise ValueError(
                f"training.log_interval: {self.log_interval!r} must be an integer >= 0 "
                "(updates between log lines; 0: none)"
            )
        # MMF's loop options (mla_plugin.trainers.loop_options; ranges checked by
        # mla_plugin.mmf_config): max_epochs wins over max_updates, as in MMF
        self.max_epochs, self.max_updates = stop_limits(t, self.writer.write)
        self.evaluation_interval = t.evaluation_interval  # None: at each epoch's end
        self.clip_norm = float(t.max_grad_l2_norm) if t.clip_gradients else None

    def _pick_device(self):
        """``training.device``: ``auto`` (the project's default: CUDA when available, else
        the CPU), ``cuda`` or ``cpu``.  ``auto`` rather than ``cuda`` because MMF's
        ``Configuration`` warns on every CPU run when the device says ``cuda`` (and then
        sets it to ``cpu`` itself)."""
        device = str(self.config.training.device)  # default: mla_bridge/defaults.yaml
        if device not in ("auto", "cpu") and not device.startswith("cuda"):
            raise ValueError(f"training.device: {device!r} is not one of auto, cuda, cpu")
        if device != "cpu" and torch.cuda.is_available():
            return torch.device("cuda", self.config.device_id if self.world > 1 else 0)
        return torch.device("cpu")

    def _seed_everything(self, seed):
        if seed is None or seed == -1:
            seed = random.SystemRandom().randint(1, 2**31 - 1)
        seed = int(seed)
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)
        return seed

    def _load_datasets(self):
        dataset_config = self.config.dataset_config[self.dataset_name]
        self.datasets, self.loaders = {}, {}
        for split in ("train", "val", "test"):
            builder = self.builder_cls()
            builder.build_dataset(dataset_config, split)
            self.datasets[split] = adapt_for_trainer(  # MMF's own builders' samples
                builder.load_dataset(dataset_config, split), self.config
            )
            if len(self.datasets[split]) == 0:
                raise ValueError(f"dataset {self.dataset_name}: the {split} split is empty")
        self.data_report = check_data(self)  # every split, before loaders and model
        batch = int(self.config.training.batch_size)
        if batch % self.world:
            raise ValueError(
                f"training.batch_size {batch} must be divisible by the {self.world} ranks"
            )
        self.batch_size = batch // self.world
        data = self.datasets["train"]
        self.train_sampler = EpochSampler(len(data), self.seed, True, self.rank, self.world)
        self.train_loader = self._loader(data, self.train_sampler)
        self.num_batches = len(self.train_loader)

    def _loader(self, dataset, sampler, batch_size=None):
        return torch.utils.data.DataLoader(
            dataset,
            batch_size=batch_size or self.batch_size,
            sampler=sampler,
            num_workers=self.config.training.num_workers,
            collate_fn=BatchCollator(dataset.dataset_name, dataset.dataset_type),
            pin_memory=self.pin_memory and self.device.type == "cuda",
            generator=torch.Generator().manual_seed(self.seed),
        )

    def _load_model_and_optimizer(self):
        attributes = self.config.model_config[self.config.model]
        with open_dict(attributes):
            attributes.model = self.config.model
            # the train split's size, for models with per-sample state (QMF's history)
            attributes.num_train_samples = len(self.datasets["train"])
        model = build_model(attributes)
        if needs_adapter(model):  # one of MMF's own models (concat_bow, mmbt, ...)
            modalities = getattr(self.datasets["train"], "modalities", ())
            model = MMFModelAdapter(model, self.config.model, modalities)
        self.model = model.to(self.device)
        if self.channels_last and not use_channels_last(self.model):
            self.writer.write(
                "training.channels_last: true, but the model has no conv encoder; ignored",
                "warning",
            )
        self.modalities: list[str] = list(self.model.modalities)
        self.optimizer = build_optimizer(self.model, self.config)
        self.lr_scheduler = None
        if self.config.training.lr_scheduler:
            self.lr_scheduler = build_scheduler(self.optimizer, self.config)
        self.hooks = self.model.training_hooks() + self.user_hooks
        # training.grad_sync (default auto: mla_bridge/defaults.yaml); None = allreduce
        self.ddp = wrap_for_grad_sync(self.model, str(self.config.training.grad_sync))
        hook_names(self.hooks)  # every hook named, no name twice (checkpoints key by name)

    def _init_loop_state(self):
        """Early stopping (its criteria checked against the model's metrics) and the
        update of the last evaluation; both saved in current.ckpt (``loop``)."""
        self.early_stop = EarlyStopping(
            self.config.training.early_stop, ["multi", *self.modalities], self.dataset_name
        )
        self.last_eval_update = None
        self.last_val = {}

    def loop_state(self) -> dict:
        return {
            "early_stop": self.early_stop.state_dict(),
            "last_eval_update": self.last_eval_update,
        }

    def load_loop_state(self, state) -> None:
        if state is not None:  # checkpoints written before MMF's loop options have none
            self.early_stop.load_state_dict(state["early_stop"])
            self.last_eval_update = state["last_eval_update"]

    def _training_done(self) -> bool:
        return (
            self.epoch >= self.max_epochs
            or self.num_updates >= self.max_updates
            or self.early_stop.stopped
        )

    def _evaluate(self):
        """Evaluate and select, then MMF's early-stopping rule."""
        self._evaluate_and_select()
        self.last_eval_update = self.num_updates
        if self.early_stop(self.last_val, self.num_updates):
            self.writer.write(self.early_stop.message())

    def _after_batch(self, before: int) -> bool:
        """Evaluate when the batch's updates crossed a multiple of
        ``training.evaluation_interval``; True when training should stop now."""
        k = self.evaluation_interval
        if k and self.num_updates // k != before // k:
            self._evaluate()
        return self._training_done()

    def _epoch_text(self, epoch) -> str:
        return f"{epoch}/{self.max_epochs}" if self.max_epochs < math.inf else str(epoch)

    # ------------------------------------------------------------- training
    def train(self):
        if "train" not in self.run_type:
            self.inference()
            return
        length = (
            f"{self.max_epochs} epochs"
            if self.max_epochs < math.inf
            else f"{self.max_updates} updates"
        )
        self.writer.write(
            f"Training {self.config.model} on {self.dataset_name}: "
            f"{length} of {self.num_batches} batches per epoch, "
            f"{self.world} process(es), seed {self.seed}"
        )
        for hook in self.hooks:
            hook.on_train_start(self.model)
        while not self._training_done():
            self._train_epoch()
            if self.batch_in_epoch == 0:  # a whole epoch (not stopped within it)
                if self.lr_scheduler is not None:
                    self.lr_scheduler.step()
                if self.evaluation_interval is None:
                    self._evaluate()
                self.tensorboard.log_epoch(
                    self.epoch, self.last_train_loss, self.last_val, self._hook_summaries()
                )
            self._save("current.ckpt")
        if self.last_eval_update != self.num_updates:  # MMF's validation where it stops
            self._evaluate()
            self._save("current.ckpt")
        for hook in self.hooks:
            hook.on_train_end(self.model)
        self.finalize()

    def _train_epoch(self):
        self.model.train()
        self.train_sampler.set_epoch(self.epoch, self.batch_in_epoch * self.batch_size)
        for hook in self.hooks:
            hook.on_train_epoch_start(self.epoch + 1, self.num_batches)
        interval = self.config.training.checkpoint_interval
        losses = []
        self._log_window = {"start": time.perf_counter(), "samples": 0, "losses": []}
        batches = tqdm(
            self.train_loader,
            total=self.num_batches,
            initial=self.batch_in_epoch,  # a resumed epoch continues where it stopped
            desc=f"epoch {self._epoch_text(self.epoch + 1)}",
            disable=not self.show_progress,
            leave=False,
            dynamic_ncols=True,
        )
        for batch in batches:
            batch = self._to_device(batch)
            before = self.num_updates
            losses.append(self._train_batch(batch))
            for hook in self.hooks:
                hook.on_train_batch_end(batch, self.batch_in_epoch, losses[-1])
            if self.world == 1:  # at once; under torch.distributed all ranks at epoch end
                self._stop_if_diverged(losses[-1:])
            self._log_progress(before, len(batch.targets) * self.world, losses[-1])
            self.batch_in_epoch += 1
            self.iteration += 1
            if self._after_batch(before):
                break
            if (
                interval
                and self.iteration % interval == 0
                and self.batch_in_epoch < self.num_batches
            ):
                self._save("current.ckpt")
        self._stop_if_diverged(losses)
        self.last_train_loss = float(np.mean(losses)) if losses else float("nan")
        if self.batch_in_epoch < self.num_batches:  # max_updates or early_stop, mid-epoch
            self.writer.write(
                f"stopped in epoch {self.epoch + 1} after batch {self.batch_in_epoch}/"
                f"{self.num_batches}, update {self.num_updates}"
            )
            return
        for hook in self.hooks:  # a whole epoch only (not one a stop cut short)
            hook.on_train_epoch_end(self.epoch + 1)
        self.epoch += 1
        self.batch_in_epoch = 0
        self.writer.write(
            f"epoch {self._epoch_text(self.epoch)} updates {self.num_updates} "
            f"train loss {np.mean(losses) if losses else float('nan'):.4f} "
            f"lr {self.optimizer.param_groups[0]['lr']:.2e}"
        )

    def _stop_if_diverged(self, losses) -> None:
        """A non-finite training loss stops the run (instead of training on and writing
        metrics of NaN weights), on every rank together: under torch.distributed the
        ranks agree through one all-reduce per epoch.  fp16 is exempt: its GradScaler
        skips such steps and lowers the scale (``skipped_steps`` in metrics.json)."""
        if self.precision == "fp16":
            return
        bad = not all(math.isfinite(v) for v in losses)
        if self.world > 1:
            flag = torch.tensor([float(bad)], device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            bad = bool(flag.item())
        if bad:
            raise FloatingPointError(
                f"{self.config.model} on {self.dataset_name}: the training loss is not finite "
                f"(epoch {self.epoch + 1}, by update {self.num_updates}); training diverged. "
                "Lower optimizer.params.lr, standardise the inputs, or check the data for "
                "inf/nan values"
            )

    def _log_progress(self, before: int, samples: int, loss: float) -> None:
        """Every ``training.log_interval`` updates: ``update N/T epoch E loss L samples/s
        S``, L the mean batch loss and S the samples per second (all ranks) since the
        last line.  T is the run's batches times the updates of this batch (MLA takes
        one per modality)."""
        window = self._log_window
        window["samples"] += samples
        window["losses"].append(loss)
        k = self.log_interval
        if not k or self.num_updates // k == before // k:
            return
        per_batch = max(self.num_updates - before, 1)
        total = self.max_updates
        if self.max_epochs < math.inf:
            total = self.max_epochs * self.num_batches * per_batch
        now = time.perf_counter()
        self.writer.write(
            f"update {self.num_updates}/{total} "
            f"epoch {self.epoch + 1} loss {np.mean(window['losses']):.4f} "
            f"samples/s {window['samples'] / max(now - window['start'], 1e-9):.1f}"
        )
        self._log_window = {"start": now, "samples": 0, "losses": []}

    def _train_batch(self, batch) -> float:
        keep_zero_grads = self.model.zero_grad_between_steps()
        mask = self.model.presence(batch)
        first, total = True, 0.0
        if self.ddp is None:
            steps = iter(self.model.training_steps(batch, self.iteration))
        else:  # DDP syncs the gradients in backward
            steps = ddp_steps(self.ddp, batch, self.iteration)
        while True:
            # the forward runs inside next(): the encoders on the first step, each
            # modality's logits and loss just before its own step
            with self.amp.autocast():
                yielded = next(steps, None)
            if yielded is None:
                break
            self.optimizer.zero_grad(set_to_none=first or not keep_zero_grads)
            first = False
            # (scaled) backward, average over ranks (unless DDP did in the backward),
            # unscale: HGM and OGM-GE act on the true gradients, and every rank sees the
            # same inf/nan (skips the same steps)
            finite = self.amp.backward(
                yielded.loss,
                self.optimizer,
                self.model.parameters(),
                average=self.ddp is None,
            )
            step = dataclasses.replace(  # the model's step plus the loop's context
                yielded,
                model=self.model,
                optimizer=self.optimizer,
                batch=batch,
                epoch=self.epoch + 1,
                batch_index=self.batch_in_epoch,
                num_batches=self.num_batches,
                global_step=self.num_updates,
                mask=mask,
                skipped=not finite,
            )
            self.skipped_steps += not finite
            for hook in self.hooks:
                hook.on_before_optimizer_step(step)
            self._clip_gradients(finite)
            self.amp.step(self.optimizer)
            for hook in self.hooks:
                hook.on_after_optimizer_step(step)
            self.num_updates += 1
            total += float(step.loss.detach())
        self.optimizer.zero_grad(set_to_none=True)
        return total

    def _clip_gradients(self, finite: bool) -> None:
        """``training.clip_gradients``: clip the total L2 norm of the final gradients (after
        the unscale and the hooks) to ``max_grad_l2_norm``, as MMF's ``clip_norm_mode:
        all``; a step the GradScaler skips (inf/nan) is left alone."""
        if self.clip_norm is not None and finite:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_norm)

    def _to_device(self, batch):
        batch = SampleList(batch) if not isinstance(batch, SampleList) else batch
        # non-blocking copies overlap the next transfer with compute from pinned memory
        return batch.to(self.device, non_blocking=self.pin_memory)

    # ---------------------------------------------------------- end of run
    def finalize(self):
        """Check the ranks agree, restore the selected weights, evaluate val and test,
        write ``<model>_final.pth`` and ``metrics.json`` (with each split's majority-class
        baseline, :func:`~mla_plugin.trainers.evaluation.majority`)."""
        in_sync = self._ranks_in_sync()  # the weights training ended with, before best.ckpt
        selected = self._restore_selected()
        predictions = {split: self._predict_split(split) for split in ("val", "test")}
        results = {split: self._split_metrics(p) for split, p in predictions.items()}
        chance = {
            split: majority(p["targets"], p["mask"], self.modalities)
            for split, p in predictions.items()
        }
        if self.rank == 0:
            atomic_torch_save(
                self.model.state_dict(),
                os.path.join(self.save_dir, f"{self.config.model}_final.pth"),
            )
            atomic_write_json(
                {
                    "method": self.config.model,
                    **self._record_fields(),  # "variant": {"hgm": "off"}, "label"
                    "dataset": self.dataset_name,
                    "seed": self.seed,
                    "selection": self.selection,
                    "selected_update": selected["update"],
                    "selected_epoch": selected["epoch"],
                    "modalities": self.modalities,
                    "world_size": self.world,
                    "ranks_in_sync": in_sync,
                    "precision": self.precision,
                    # fp16 steps the GradScaler skipped (inf/nan gradients); 0 otherwise
                    "skipped_steps": self.skipped_steps,
                    "val": results["val"],
                    "test": results["test"],
                    # binary tasks: MMF's roc_auc per split (fused, per modality); else null
                    "roc_auc": {s: self._split_roc_auc(p) for s, p in predictions.items()}
                    if predictions["test"]["scores"].shape[1] == 2
                    else None,
                    # the majority-class baseline of each split, from its targets
                    "majority": chance,
                    **self._hook_summaries(),  # e.g. "hgm": {"trace_p": [...]}
                    **self.data_report,  # {"dropped_samples": ...} when any were dropped
                },
                os.path.join(self.save_dir, "metrics.json"),
            )
        self.writer.write("test " + format_metrics(results["test"]))
        self.tensorboard.close()

    def _hook_summaries(self) -> dict:
        """``{hook.name: hook.summary()}`` for the hooks with a non-empty summary."""
        out = {h.name: h.summary() for h in self.hooks}
        return {name: summary for name, summary in out.items() if summary}

    def _ranks_in_sync(self) -> bool:
        """Under torch.distributed, whether every rank holds bit-identical parameters and
        hook state (MLA's P)."""
        if self.world == 1:
            return True
        tensors = list(self.model.state_dict().values())
        for hook in self.hooks:
            tensors += [v for v in _flatten_state(hook.state_dict()) if torch.is_tensor(v)]
        in_sync = same_on_all_ranks(tensors, self.device)
        if not in_sync:
            self.writer.write("ranks hold different parameters at the end of training", "error")
        return in_sync
