"""The training loop every method shares, registered as the MMF trainer ``multimodal``.

Per batch the model yields one or more :class:`~mla_plugin.core.hooks.Step` (one joint
step for the baselines; one per scheduled modality for MLA).  For each::

    forward (under autocast) -> zero_grad -> (scaled) loss.backward()
              -> average gradients over ranks (training.grad_sync: one flat all-reduce,
                 core.distributed.average_gradients, or DistributedDataParallel during
                 the backward) -> unscale (fp16)
              -> hooks.on_before_optimizer_step (MLA's HGM, OGM-GE)
              -> clip the gradient norm (training.clip_gradients) -> optimizer.step()
              -> hooks.on_after_optimizer_step (QMF's history)

The loop owns the optimisation and the counters of the run's
:class:`~mla_plugin.trainers.context.RunContext`; everything else is a hook called at a
named moment (:mod:`mla_plugin.core.hooks`): the model's (``training_hooks()``), the
user's (``training.hooks``) and the loop's callbacks (``training.callbacks``:
checkpointing, model selection, early stopping, TensorBoard, progress lines, the
divergence guard; :mod:`mla_plugin.trainers.callbacks`).  A model that trains in stages
declares them (:mod:`mla_plugin.trainers.stages`).  The trainer's own keys
(``training.precision``, ``channels_last``, ``progress_bar``, ``grad_sync``, ``hooks``,
``callbacks``) have their defaults in ``mla_plugin/configs/trainer.yaml``.

Validation runs after each epoch (or every ``training.evaluation_interval`` updates) and
once more where training stops; training stops at ``max_epochs``, ``max_updates`` or a
callback's stop (:mod:`~mla_plugin.trainers.loop_options`), and the run ends by writing
``metrics.json`` in the save directory (:mod:`~mla_plugin.trainers.results`).
"""

import dataclasses
import gc
import random

import numpy as np
import torch
import torch.distributed as dist
from mmf.common.registry import registry
from mmf.trainers.base_trainer import BaseTrainer
from mmf.utils.build import build_model, build_optimizer, build_scheduler
from mmf.utils.logger import Logger
from omegaconf import OmegaConf, open_dict

from mla_plugin.builders.mmf_samples import adapt_for_trainer
from mla_plugin.config_validation import validate
from mla_plugin.core.distributed import (
    average_gradients,
    check_grad_sync,
    ddp_steps,
    wrap_for_grad_sync,
)
from mla_plugin.core.encoders import use_channels_last
from mla_plugin.core.hooks import build_hooks, hook_names
from mla_plugin.core.precision import BOOL_HINT, MixedPrecision, resolve_precision
from mla_plugin.models.mmf_adapter import MMFModelAdapter, needs_adapter
from mla_plugin.trainers.callbacks import build_callbacks, progress_options
from mla_plugin.trainers.checkpointing import resume
from mla_plugin.trainers.context import RunContext
from mla_plugin.trainers.evaluation import SELECTIONS, evaluate_split, inference
from mla_plugin.trainers.loop_options import stop_limits
from mla_plugin.trainers.preflight import check_data, dry_forward
from mla_plugin.trainers.results import finalize
from mla_plugin.trainers.run_folder import open_record, release_log_files
from mla_plugin.trainers.run_logging import keep_run_handlers
from mla_plugin.trainers.sampler import EpochSampler
from mla_plugin.trainers.stages import StageRunner
from mla_plugin.trainers.trial_report import trial_callbacks


@registry.register_trainer("multimodal")
class MultimodalTrainer(BaseTrainer):
    """MMF trainer for MLA and the baselines: set-up and the training loop (see the
    module docstring).  ``self.ctx`` is the run's state."""

    # ----------------------------------------------------------------- set-up
    def load(self):
        cfg = self.config
        rank = dist.get_rank() if dist.is_initialized() else 0
        world = dist.get_world_size() if dist.is_initialized() else 1
        device = self._pick_device(world)
        registry.register("current_device", device)
        writer = registry.get("writer", no_warning=True) or Logger(cfg)
        keep_run_handlers(writer)  # an earlier run in this process keeps its lines
        self.run_type = cfg.get("run_type", "train")
        try:  # before anything resolves the config's interpolations
            self._registered_names()
        except ValueError:  # refused: leave no empty log file in env.save_dir
            release_log_files(writer, str(cfg.env.save_dir))
            raise
        # the run folder (a new one unless env.save_dir is given), its lock, the resume
        # checks and config.yaml (mla_plugin/trainers/run_folder.py)
        save_dir, self.variant = open_record(cfg, writer, rank, world, self.run_type)
        ctx = self.ctx = RunContext(
            config=cfg,
            writer=writer,
            device=device,
            rank=rank,
            world=world,
            run_type=self.run_type,
            save_dir=save_dir,
            seed=self._seed_everything(cfg.training.seed),
            dataset_name=cfg.datasets.split(",")[0],
        )
        self._validate_config()
        self._read_loop_options()
        ctx.selection = cfg.protocol.selection  # default: mla_plugin/configs/protocol.yaml
        if ctx.selection not in SELECTIONS:
            raise ValueError(
                f"protocol.selection: {ctx.selection!r} is not one of {list(SELECTIONS)}"
            )
        self.load_datasets()
        self.load_model_and_optimizer()
        dry_forward(  # one batch per split through the model, before training
            ctx.model,
            ctx.datasets,
            batch_size=ctx.batch_size,
            to_device=ctx.to_device,
            amp=ctx.amp,
            run=f"{cfg.model} on {ctx.dataset_name}",
        )
        ctx.callbacks.insert(0, StageRunner(ctx))  # the model's stages (one by default)
        ctx.call("setup", ctx)
        resume(ctx)

    def _registered_names(self):
        """The model and the dataset must be registered: an unknown name is named here,
        before an interpolation that reads its section fails on it."""
        self.model_cls = registry.get_model_class(self.config.model)
        if self.model_cls is None:
            raise ValueError(
                f"no model named {self.config.model!r} is registered; registered: "
                f"{', '.join(sorted(registry.mapping['model_name_mapping']))}"
            )
        dataset = str(self.config.datasets).split(",")[0]
        self.builder_cls = registry.get_builder_class(dataset)
        if self.builder_cls is None:
            raise ValueError(
                f"no dataset builder named {dataset!r} is registered; "
                f"registered: {', '.join(sorted(registry.mapping['builder_name_mapping']))}"
            )

    def _validate_config(self):
        """Unknown keys, wrong types and unset values in the plugin's sections stop the
        run here, before any data is read (:mod:`mla_plugin.config_validation`)."""
        validate(self.config, self.model_cls, self.builder_cls)
        check_grad_sync(self.model_cls, str(self.config.training.grad_sync))

    def _read_loop_options(self):
        """Precision, memory format, pinning, progress bar, log interval, user hooks and
        callbacks (defaults: mla_plugin/configs/trainer.yaml), and MMF's loop options; a
        bad value stops the run here, naming its key."""
        ctx, t = self.ctx, self.config.training
        ctx.precision = resolve_precision(t.precision, t.fp16)
        ctx.amp = MixedPrecision(ctx.precision, ctx.device)
        for key in ("channels_last", "pin_memory"):
            if not isinstance(t[key], bool):
                raise ValueError(f"training.{key}: {t[key]!r} must be a bool ({BOOL_HINT})")
        self.channels_last, ctx.pin_memory = t.channels_last, t.pin_memory
        progress_options(t, ctx.rank)  # checked here, read by the progress callback
        # user hooks and the loop's callbacks by name, built here so a bad entry stops the
        # run before any data is read
        hooks = t.hooks
        if not OmegaConf.is_list(hooks):
            raise ValueError(
                f"training.hooks: {hooks!r} must be a list of hook names or "
                "{type: <name>, params: {...}} mappings (MMF's command line reads Python "
                "literals: training.hooks=\"['grad_norm']\")"
            )
        self.user_hooks = build_hooks(OmegaConf.to_container(hooks, resolve=True))
        # a leaderboard trial's run reports to its study (never in a plain run)
        ctx.callbacks = build_callbacks(t.callbacks) + trial_callbacks()
        # MMF's loop options (mla_plugin.trainers.loop_options; ranges checked by
        # mla_plugin.mmf_config): max_epochs wins over max_updates, as in MMF
        ctx.max_epochs, ctx.max_updates = stop_limits(t, ctx.writer.write)
        ctx.evaluation_interval = t.evaluation_interval  # None: at each epoch's end
        self.clip_norm = float(t.max_grad_l2_norm) if t.clip_gradients else None

    def _pick_device(self, world: int) -> torch.device:
        """``training.device``: ``auto`` (the project's default: CUDA when available, else
        the CPU), ``cuda`` or ``cpu``.  ``auto`` rather than ``cuda`` because MMF's
        ``Configuration`` warns on every CPU run when the device says ``cuda`` (and then
        sets it to ``cpu`` itself)."""
        device = str(self.config.training.device)  # default: mla_bridge/defaults.yaml
        if device not in ("auto", "cpu") and not device.startswith("cuda"):
            raise ValueError(f"training.device: {device!r} is not one of auto, cuda, cpu")
        if device != "cpu" and torch.cuda.is_available():
            return torch.device("cuda", self.config.device_id if world > 1 else 0)
        return torch.device("cpu")

    @staticmethod
    def _seed_everything(seed) -> int:
        if seed is None or seed == -1:
            seed = random.SystemRandom().randint(1, 2**31 - 1)
        seed = int(seed)
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)
        return seed

    def load_datasets(self):
        """rc10's moment: every split built by the dataset's builder, checked
        (:func:`~mla_plugin.trainers.preflight.check_data`), and the train loader."""
        ctx = self.ctx
        dataset_config = self.config.dataset_config[ctx.dataset_name]
        for split in ("train", "val", "test"):
            builder = self.builder_cls()
            builder.build_dataset(dataset_config, split)
            ctx.datasets[split] = adapt_for_trainer(  # MMF's own builders' samples
                builder.load_dataset(dataset_config, split), self.config
            )
            if len(ctx.datasets[split]) == 0:
                raise ValueError(f"dataset {ctx.dataset_name}: the {split} split is empty")
        ctx.data_report = check_data(  # every split, before loaders and model
            self.config,
            ctx.datasets,
            ctx.dataset_name,
            log=lambda line: ctx.writer.write(line, "warning"),
        )
        batch = int(self.config.training.batch_size)
        if batch % ctx.world:
            raise ValueError(
                f"training.batch_size {batch} must be divisible by the {ctx.world} ranks"
            )
        ctx.batch_size = batch // ctx.world
        data = ctx.datasets["train"]
        ctx.train_sampler = EpochSampler(len(data), ctx.seed, True, ctx.rank, ctx.world)
        ctx.train_loader = ctx.loader(data, ctx.train_sampler)
        ctx.num_batches = len(ctx.train_loader)

    def load_model_and_optimizer(self):
        """rc10's moment: the model (MMF's own wrapped for this loop), the optimizer, the
        scheduler, the hooks and the gradient synchronisation."""
        ctx = self.ctx
        attributes = self.config.model_config[self.config.model]
        with open_dict(attributes):
            attributes.model = self.config.model
            # the train split's size, for models with per-sample state (QMF's history)
            attributes.num_train_samples = len(ctx.datasets["train"])
        model = build_model(attributes)
        if needs_adapter(model):  # one of MMF's own models (concat_bow, mmbt, ...)
            modalities = getattr(ctx.datasets["train"], "modalities", ())
            model = MMFModelAdapter(model, self.config.model, modalities)
        ctx.model = model.to(ctx.device)
        if self.channels_last and not use_channels_last(ctx.model):
            ctx.writer.write(
                "training.channels_last: true, but the model has no conv encoder; ignored",
                "warning",
            )
        ctx.modalities = list(ctx.model.modalities)
        ctx.optimizer = build_optimizer(ctx.model, self.config)
        if self.config.training.lr_scheduler:
            ctx.lr_scheduler = build_scheduler(ctx.optimizer, self.config)
        ctx.hooks = ctx.model.training_hooks() + self.user_hooks
        # training.grad_sync (default auto: mla_plugin/configs/trainer.yaml); None = allreduce
        ctx.ddp = wrap_for_grad_sync(ctx.model, str(self.config.training.grad_sync))
        hook_names(ctx.hooks)  # every hook named, no name twice (checkpoints key by name)

    # ------------------------------------------------------------- training
    def inference(self):
        """rc10's entry point of ``mmf_predict`` (``run_type`` test/val without training):
        the plugin's evaluation, with per-sample predictions as CSV when
        ``evaluation.predict`` is set."""
        inference(self.ctx)

    def train(self):
        ctx = self.ctx
        if "train" not in self.run_type:
            self.inference()
            return
        ctx.call("on_train_start", ctx.model)
        while not ctx.training_done():
            self.train_epoch()
            if ctx.batch_in_epoch == 0:  # a whole epoch (not stopped within it)
                if ctx.lr_scheduler is not None:
                    ctx.lr_scheduler.step()
                if ctx.evaluation_interval is None:
                    self.validate()
                ctx.call("on_train_epoch_end", ctx.epoch)
        if ctx.last_eval_update != ctx.num_updates:  # MMF's validation where it stops
            self.validate()
        ctx.call("on_train_end", ctx.model)
        finalize(ctx, self.variant)
        ctx.call("on_fit_end")
        if ctx.ddp is not None:  # its reducer's gloo work holds tensors: free it now, not
            ctx.ddp = None  # in the interpreter's finalization, where it can abort the process
            gc.collect()

    def validate(self):
        """Validation accuracy, then ``on_validation_end`` (model selection, early
        stopping)."""
        ctx = self.ctx
        ctx.last_val = evaluate_split(ctx, "val")
        ctx.last_eval_update = ctx.num_updates
        ctx.call("on_validation_end", ctx.last_val)

    def train_epoch(self):
        """The batches of one epoch (the rest of it, when resumed within it)."""
        ctx = self.ctx
        ctx.model.train()
        ctx.train_sampler.set_epoch(ctx.epoch, ctx.batch_in_epoch * ctx.batch_size)
        ctx.call("on_train_epoch_start", ctx.epoch + 1, ctx.num_batches)
        ctx.epoch_losses = []
        k = ctx.evaluation_interval
        for batch in ctx.train_loader:
            batch = ctx.to_device(batch)
            before = ctx.updates_before_batch = ctx.num_updates
            loss = self.train_batch(batch)
            ctx.epoch_losses.append(loss)
            index = ctx.batch_in_epoch
            ctx.batch_in_epoch += 1
            ctx.iteration += 1
            if k and ctx.num_updates // k != before // k:
                self.validate()
            ctx.call("on_train_batch_end", batch, index, loss)
            if ctx.training_done():
                break
        losses = ctx.epoch_losses
        ctx.last_train_loss = float(np.mean(losses)) if losses else float("nan")
        if ctx.batch_in_epoch == ctx.num_batches:  # a whole epoch
            ctx.epoch += 1
            ctx.batch_in_epoch = 0

    def train_batch(self, batch) -> float:
        """The model's optimizer steps on one batch (see the module docstring); returns
        the sum of their losses."""
        ctx = self.ctx
        model, optimizer, amp = ctx.model, ctx.optimizer, ctx.amp
        keep_zero_grads = model.zero_grad_between_steps()
        mask = model.presence(batch)
        first, total = True, 0.0
        if ctx.ddp is None:
            steps = iter(model.training_steps(batch, ctx.iteration))
        else:  # DDP syncs the gradients in backward
            steps = ddp_steps(ctx.ddp, batch, ctx.iteration)
        while True:
            # the forward runs inside next(): the encoders on the first step, each
            # modality's logits and loss just before its own step
            with amp.autocast():
                yielded = next(steps, None)
            if yielded is None:
                break
            optimizer.zero_grad(set_to_none=first or not keep_zero_grads)
            first = False
            # (scaled) backward, average over ranks (unless DDP did in the backward),
            # unscale: HGM and OGM-GE act on the true gradients, and every rank sees the
            # same inf/nan (skips the same steps)
            amp.backward(yielded.loss)
            if ctx.ddp is None:
                average_gradients(model.parameters())
            finite = amp.unscale(optimizer)
            step = dataclasses.replace(  # the model's step plus the loop's context
                yielded,
                model=model,
                optimizer=optimizer,
                batch=batch,
                epoch=ctx.epoch + 1,
                batch_index=ctx.batch_in_epoch,
                num_batches=ctx.num_batches,
                global_step=ctx.num_updates,
                mask=mask,
                skipped=not finite,
            )
            ctx.skipped_steps += not finite
            ctx.call("on_before_optimizer_step", step)
            if self.clip_norm is not None and finite:
                # training.clip_gradients: the total L2 norm of the final gradients (after
                # the unscale and the hooks), as MMF's clip_norm_mode: all
                torch.nn.utils.clip_grad_norm_(model.parameters(), self.clip_norm)
            amp.step(optimizer)
            ctx.call("on_after_optimizer_step", step)
            ctx.num_updates += 1
            total += float(step.loss.detach())
        optimizer.zero_grad(set_to_none=True)
        return total

    # ------------------------------------------------------ views for tests and tools
    @property
    def model(self):
        return self.ctx.model

    @property
    def datasets(self):
        return self.ctx.datasets

    @property
    def hooks(self):
        return self.ctx.hooks

    @property
    def modalities(self):
        return self.ctx.modalities
