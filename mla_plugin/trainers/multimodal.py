"""The training loop every method shares, registered as MMF trainers ``multimodal`` and
``mla``.

Per batch the model yields one or more :class:`~mla_plugin.models.base.TrainStep` (one
joint step for the baselines; one per scheduled modality for MLA).  For each::

    zero_grad -> loss.backward() -> average gradients over ranks
              -> hooks.after_backward (MLA's HGM, OGM-GE) -> optimizer.step()
              -> hooks.after_step (QMF's history)

Evaluation reports the fused (``multi``) and every per-modality accuracy; the model is
selected on the validation fused accuracy (``protocol.selection``), and the run ends
by writing ``metrics.json`` in the save directory.  Checkpoints hold everything needed
to resume exactly: model, optimizer, scheduler, hook state (MLA's P), position in the
epoch and the RNG states.
"""
import math
import os
import random
from typing import Dict, List, Optional

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from mmf.common.batch_collator import BatchCollator
from mmf.common.registry import registry
from mmf.common.sample import SampleList
from mmf.modules.metrics import Accuracy
from mmf.trainers.base_trainer import BaseTrainer
from mmf.utils.build import build_model, build_optimizer, build_scheduler
from mmf.utils.configuration import get_mmf_env
from mmf.utils.logger import Logger
from omegaconf import OmegaConf, open_dict

from mla_plugin.config_validation import validate
from mla_plugin.core.distributed import average_gradients, same_on_all_ranks
from mla_plugin.core.hooks import Step
from mla_plugin.trainers.sampler import EpochSampler
from mla_plugin.utils.io import atomic_torch_save, atomic_write_json, remove_stale_temps

SELECTIONS = ("val", "last", "best_on_test")


def _format_metrics(metrics) -> str:
    """``multi 0.8610 strong 0.8390 weak n/a`` (None = no prediction for the modality)."""
    return " ".join(f"{k} {'n/a' if v is None else format(v, '.4f')}" for k, v in metrics.items())


def _accuracy(scores: torch.Tensor, targets: torch.Tensor) -> Optional[float]:
    """MMF's ``accuracy`` metric, as a float (None for no samples)."""
    if len(targets) == 0:
        return None
    return Accuracy().calculate({"targets": targets}, {"scores": scores}).item()


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
class MultimodalTrainer(BaseTrainer):
    """MMF trainer for MLA and the baselines (see the module docstring)."""

    # ----------------------------------------------------------------- set-up
    def load(self):
        cfg = self.config
        self.run_type = cfg.get("run_type", "train")
        self.rank = dist.get_rank() if dist.is_initialized() else 0
        self.world = dist.get_world_size() if dist.is_initialized() else 1
        self.device = self._pick_device()
        registry.register("current_device", self.device)
        self.writer = registry.get("writer", no_warning=True) or Logger(cfg)
        self.save_dir = get_mmf_env(key="save_dir")
        self.seed = self._seed_everything(cfg.training.seed)
        self.dataset_name = cfg.datasets.split(",")[0]
        self._validate_config()
        self.selection = cfg.protocol.selection  # default: mla_plugin/configs/protocol.yaml
        if self.selection not in SELECTIONS:
            raise ValueError(f"protocol.selection: {self.selection!r} is not one of {list(SELECTIONS)}")
        self._load_datasets()
        self._load_model_and_optimizer()
        self.epoch, self.batch_in_epoch, self.iteration, self.num_updates = 0, 0, 0, 0
        self.best = {"value": -math.inf, "update": None, "epoch": None}
        self._resume()

    def _validate_config(self):
        """Unknown keys, wrong types and unset values in the plugin's sections stop the
        run here, before any data is read (:mod:`mla_plugin.config_validation`)."""
        model_cls = registry.get_model_class(self.config.model)
        if model_cls is None:
            raise ValueError(f"no model named {self.config.model!r} is registered; registered: "
                             f"{', '.join(sorted(registry.mapping['model_name_mapping']))}")
        builder_cls = registry.get_builder_class(self.dataset_name)
        if builder_cls is None:
            raise ValueError(f"no dataset builder named {self.dataset_name!r} is registered; "
                             f"registered: {', '.join(sorted(registry.mapping['builder_name_mapping']))}")
        validate(self.config, model_cls, builder_cls)
        self.builder_cls = builder_cls

    def _pick_device(self):
        if torch.cuda.is_available() and "cuda" in str(self.config.training.get("device", "cuda")):
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
            self.datasets[split] = builder.load_dataset(dataset_config, split)
            if len(self.datasets[split]) == 0:
                raise ValueError(f"dataset {self.dataset_name}: the {split} split is empty")
        batch = int(self.config.training.batch_size)
        if batch % self.world:
            raise ValueError(f"training.batch_size {batch} must be divisible by the {self.world} ranks")
        self.batch_size = batch // self.world
        data = self.datasets["train"]
        self.train_sampler = EpochSampler(len(data), self.seed, True, self.rank, self.world)
        self.train_loader = self._loader(data, self.train_sampler)
        self.num_batches = len(self.train_loader)

    def _loader(self, dataset, sampler, batch_size=None):
        return torch.utils.data.DataLoader(
            dataset, batch_size=batch_size or self.batch_size, sampler=sampler,
            num_workers=self.config.training.num_workers,
            collate_fn=BatchCollator(dataset.dataset_name, dataset.dataset_type),
            generator=torch.Generator().manual_seed(self.seed))

    def _load_model_and_optimizer(self):
        attributes = self.config.model_config[self.config.model]
        with open_dict(attributes):
            attributes.model = self.config.model
            # the train split's size, for models with per-sample state (QMF's history)
            attributes.num_train_samples = len(self.datasets["train"])
        self.model = build_model(attributes).to(self.device)
        self.modalities: List[str] = list(self.model.modalities)
        self.optimizer = build_optimizer(self.model, self.config)
        self.lr_scheduler = None
        if self.config.training.lr_scheduler:
            self.lr_scheduler = build_scheduler(self.optimizer, self.config)
        self.hooks = self.model.training_hooks()
        self.max_epochs = int(self.config.training.max_epochs)

    # ------------------------------------------------------------- training
    def train(self):
        if "train" not in self.run_type:
            self.inference()
            return
        self.writer.write(f"Training {self.config.model} on {self.dataset_name}: "
                          f"{self.max_epochs} epochs of {self.num_batches} batches, "
                          f"{self.world} process(es), seed {self.seed}")
        for hook in self.hooks:
            hook.on_train_start(self.model)
        while self.epoch < self.max_epochs:
            self._train_epoch()
            if self.lr_scheduler is not None:
                self.lr_scheduler.step()
            self._evaluate_and_select()
            self._save("current.ckpt")
        self.finalize()

    def _train_epoch(self):
        self.model.train()
        self.train_sampler.set_epoch(self.epoch, self.batch_in_epoch * self.batch_size)
        for hook in self.hooks:
            hook.on_epoch_start(self.epoch + 1, self.num_batches)
        interval = self.config.training.checkpoint_interval
        losses = []
        for batch in self.train_loader:
            batch = self._to_device(batch)
            losses.append(self._train_batch(batch))
            self.batch_in_epoch += 1
            self.iteration += 1
            if interval and self.iteration % interval == 0 and self.batch_in_epoch < self.num_batches:
                self._save("current.ckpt")
        self.epoch += 1
        self.batch_in_epoch = 0
        self.writer.write(f"epoch {self.epoch}/{self.max_epochs} updates {self.num_updates} "
                          f"train loss {np.mean(losses) if losses else float('nan'):.4f} "
                          f"lr {self.optimizer.param_groups[0]['lr']:.2e}")

    def _train_batch(self, batch) -> float:
        keep_zero_grads = self.model.zero_grad_between_steps()
        mask = self.model.presence(batch)
        first, total = True, 0.0
        for ts in self.model.training_steps(batch, self.iteration):
            self.optimizer.zero_grad(set_to_none=first or not keep_zero_grads)
            first = False
            ts["loss"].backward()
            average_gradients(self.model.parameters())
            step = Step(model=self.model, optimizer=self.optimizer, loss=ts["loss"], batch=batch,
                        epoch=self.epoch + 1, batch_index=self.batch_in_epoch,
                        num_batches=self.num_batches, global_step=self.num_updates,
                        modality=ts.get("modality"), modality_index=ts.get("modality_index"),
                        features=ts.get("features", {}), outputs=ts.get("outputs", {}),
                        mask=mask)
            for hook in self.hooks:
                hook.after_backward(step)
            self.optimizer.step()
            for hook in self.hooks:
                hook.after_step(step)
            self.num_updates += 1
            total += float(ts["loss"].detach())
        self.optimizer.zero_grad(set_to_none=True)
        return total

    def _to_device(self, batch):
        batch = SampleList(batch) if not isinstance(batch, SampleList) else batch
        return batch.to(self.device)

    # ----------------------------------------------------------- evaluation
    @torch.no_grad()
    def _predict_split(self, split: str) -> Dict[str, torch.Tensor]:
        """Fused and per-modality logits, targets and presence over a whole split (every
        rank evaluates the full split, so all ranks agree without a gather)."""
        data = self.datasets[split]
        loader = self._loader(data, EpochSampler(len(data), 0, False), batch_size=self.batch_size * self.world)
        was_training = self.model.training
        self.model.eval()
        parts = {"scores": [], "targets": [], "mask": [], "index": []}
        per_modality = {m: [] for m in self.modalities}
        for batch in loader:
            batch = self._to_device(batch)
            out = self.model(batch)
            parts["scores"].append(out["scores"].cpu())
            parts["targets"].append(batch.targets.cpu())
            parts["mask"].append(batch.mask.cpu().bool())
            parts["index"].append(batch.index.cpu())
            for m in self.modalities:
                if m in out["modality_scores"]:  # a unimodal model predicts only its own
                    per_modality[m].append(out["modality_scores"][m].cpu())
        self.model.train(was_training)
        result = {k: torch.cat(v) for k, v in parts.items()}
        result.update({f"scores_{m}": torch.cat(v) for m, v in per_modality.items() if v})
        return result

    def evaluate_split(self, split: str) -> Dict[str, float]:
        """``{"multi": fused accuracy, <modality>: unimodal accuracy, ...}``; a modality's
        accuracy (MMF's ``accuracy`` metric) counts only the samples where it is present.  It is None (JSON null)
        when the model makes no prediction for the modality (``unimodal``'s other
        modalities) or when no sample of the split has it."""
        p = self._predict_split(split)
        metrics = {"multi": _accuracy(p["scores"], p["targets"])}
        for i, m in enumerate(self.modalities):
            present = p["mask"][:, i]
            if f"scores_{m}" not in p or not bool(present.any()):
                metrics[m] = None
                continue
            metrics[m] = _accuracy(p[f"scores_{m}"][present], p["targets"][present])
        return metrics

    def _evaluate_and_select(self):
        val = self.evaluate_split("val")
        message = f"epoch {self.epoch} val " + _format_metrics(val)
        value = val["multi"]
        if self.selection == "best_on_test":
            test = self.evaluate_split("test")
            value = test["multi"]
            message += " | test (legacy selection) " + _format_metrics(test)
        self.writer.write(message)
        if self.selection != "last" and value > self.best["value"]:
            self.best = {"value": value, "update": self.num_updates, "epoch": self.epoch}
            self._save("best.ckpt")

    def finalize(self):
        in_sync = self._ranks_in_sync()  # the weights training ended with, before best.ckpt
        if self.selection == "last" or self.best["update"] is None:
            selected = {"update": self.num_updates, "epoch": self.epoch}
        else:
            self._load_checkpoint(os.path.join(self.save_dir, "best.ckpt"), weights_only=True)
            selected = self.best
        results = {split: self.evaluate_split(split) for split in ("val", "test")}
        if self.rank == 0:
            atomic_torch_save(self.model.state_dict(),
                              os.path.join(self.save_dir, f"{self.config.model}_final.pth"))
            atomic_write_json({
                "method": self.config.model, "dataset": self.dataset_name, "seed": self.seed,
                "selection": self.selection, "selected_update": selected["update"],
                "selected_epoch": selected["epoch"], "modalities": self.modalities,
                "world_size": self.world, "ranks_in_sync": in_sync,
                "val": results["val"], "test": results["test"],
            }, os.path.join(self.save_dir, "metrics.json"))
        self.writer.write("test " + _format_metrics(results["test"]))

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

    def inference(self):
        """``run_type`` test/val without training; with ``evaluation.predict`` (as
        ``mmf_predict`` sets) also writes per-sample predictions as CSV."""
        for split in ("val", "test"):
            if split not in self.run_type and not (split == "test" and "inference" in self.run_type):
                continue
            metrics = self.evaluate_split(split)
            self.writer.write(f"{split} " + _format_metrics(metrics))
            if self.config.evaluation.predict and self.rank == 0:
                self._write_predictions(split)

    def _write_predictions(self, split):
        p = self._predict_split(split)
        table = pd.DataFrame({"index": p["index"].numpy(), "target": p["targets"].numpy(),
                              "prediction": p["scores"].argmax(1).numpy()})
        for i, m in enumerate(self.modalities):
            if f"scores_{m}" in p:
                table[f"prediction_{m}"] = p[f"scores_{m}"].argmax(1).numpy()
            table[f"present_{m}"] = p["mask"][:, i].numpy()
        path = os.path.join(self.save_dir, f"predictions_{self.dataset_name}_{split}.csv")
        os.makedirs(self.save_dir, exist_ok=True)
        table.to_csv(path, index=False)
        self.writer.write(f"Wrote {len(table)} predictions to {path}")

    # --------------------------------------------------------- checkpoints
    def _state(self):
        return {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": self.lr_scheduler.state_dict() if self.lr_scheduler else None,
            "hooks": [h.state_dict() for h in self.hooks],
            "counts": {"epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                       "iteration": self.iteration, "num_updates": self.num_updates},
            "best": dict(self.best),
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                    "python": random.getstate()},
            "config": self._resolved_config(),
        }

    def _resolved_config(self):
        """The run's config as plain data, resolved once (it does not change while
        training; resolving it at every checkpoint cost about 2 % of a small run)."""
        if getattr(self, "_config_container", None) is None:
            self._config_container = OmegaConf.to_container(self.config, resolve=True)
        return self._config_container

    def _save(self, name):
        if self.rank == 0:
            atomic_torch_save(self._state(), os.path.join(self.save_dir, name))
        if self.world > 1:
            dist.barrier()  # no rank reads a checkpoint before rank 0 has written it

    def _resume(self):
        ckpt = self.config.checkpoint
        if self.rank == 0 and os.path.isdir(self.save_dir):
            for path in remove_stale_temps(self.save_dir):
                self.writer.write(f"removed {path}, left by a run killed while writing")
        current = os.path.join(self.save_dir, "best.ckpt" if ckpt.resume_best else "current.ckpt")
        if ckpt.resume and os.path.exists(current):
            self._load_checkpoint(current)
        elif ckpt.resume_file:
            if not os.path.exists(ckpt.resume_file):
                raise FileNotFoundError(f"checkpoint.resume_file {ckpt.resume_file} does not exist")
            self._load_checkpoint(ckpt.resume_file, weights_only="train" not in self.run_type)

    def _load_checkpoint(self, path, weights_only=False):
        state = torch.load(path, map_location=self.device, weights_only=False)
        if "model" not in state:  # a bare state dict, e.g. <model>_final.pth
            self.model.load_state_dict(state)
            return
        self.model.load_state_dict(state["model"])
        if weights_only:
            return
        self.optimizer.load_state_dict(state["optimizer"])
        if self.lr_scheduler is not None and state["lr_scheduler"] is not None:
            self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        for hook, hook_state in zip(self.hooks, state["hooks"]):
            hook.load_state_dict(hook_state)
        counts = state["counts"]
        self.epoch, self.batch_in_epoch = counts["epoch"], counts["batch_in_epoch"]
        self.iteration, self.num_updates = counts["iteration"], counts["num_updates"]
        self.best = state["best"]
        torch.set_rng_state(state["rng"]["torch"])
        np.random.set_state(state["rng"]["numpy"])
        random.setstate(state["rng"]["python"])
        self.writer.write(f"Resumed from {path} at epoch {self.epoch}, batch {self.batch_in_epoch}")


@registry.register_trainer("mla")
class MLATrainer(MultimodalTrainer):
    """The same loop under MLA's name: the MLA model's ``training_steps`` runs the
    modality schedule and its HGM hook projects the head gradient before each
    optimizer step.  The baselines run in it unchanged, so ``model=<baseline>`` on an
    MLA config's command line compares like with like."""
