"""Framework-free core of MLA and the baselines: plain PyTorch, no MMF import.

Each module holds one piece of a method, readable against the paper's equations:

- :mod:`.agm` -- AGM's Shapley mono-modal scores and gradient-modulation coefficients as a hook;
- :mod:`.amco` -- AMCo's class masks of the dependent modality and its dependence measure;
- :mod:`.aug` -- AUG's sustained-boosting loss, classifier assignment and merge;
- :mod:`.cml` -- CML's subset confidences and their hinges (paper and BalanceBenchmark);
- :mod:`.correlation` -- the CCA family's correlation and reconstruction terms (CCA, DCCA, DCCAE);
- :mod:`.distributed` -- the collectives of the hooks and the trainer (means, gradient averaging);
- :mod:`.encoders` -- the encoders h_m (MLP, conv, ResNet-18, frozen features, BERT), their factory;
- :mod:`.fusion` -- MLA's test-time dynamic fusion by entropy (Eq. 5-7) and the fixed/mean rules;
- :mod:`.fusion_heads` -- the baselines' heads: Concat, Sum, late fusion, QMF, FiLM, BiGated;
- :mod:`.gblending` -- G-Blending's blend weights from G / O² and its blended loss;
- :mod:`.greedy` -- Greedy's MMTM block, conditional learning speeds and re-balancing windows;
- :mod:`.hgm` -- MLA's head gradient modification as a training hook (Algorithm 1);
- :mod:`.hooks` -- the training-loop hook points every method plugs into;
- :mod:`.imagination` -- the imputation family's autoencoder, cascade, conditions and CMD (AE,
  CRA, MMIN, IF-MMIN);
- :mod:`.inforeg` -- InfoReg's prime-window indicator and proximal regulation as a training hook;
- :mod:`.lfm` -- LFM's alignment losses, fitted schedule and hypergradient step for its weight;
- :mod:`.losses` -- cross-entropy over the samples where a modality is present;
- :mod:`.mbsd` -- MBSD's weighted pairwise self-distillation (as BalanceBenchmark has it);
- :mod:`.mmcosine` -- MMCosine's scaled cosine logits per modality and their sum;
- :mod:`.mmpareto` -- MMPareto's Pareto combination of multimodal and unimodal gradients (hook);
- :mod:`.modality_valuation` -- Shapley values of modality coalitions and the re-sampling counts;
- :mod:`.ogm_ge` -- OGM-GE's gradient modulation and noise as a training hook (and plain OGM);
- :mod:`.opm` -- OPM's drop probabilities and per-sample feature dropping;
- :mod:`.partial_views` -- CPM-Net's latent, reconstruction, structured loss and prototypes;
- :mod:`.pmr` -- PMR's prototypes, prototypical CE and entropy, and imbalance coefficients;
- :mod:`.precision` -- mixed precision: autocast, and loss scaling for fp16;
- :mod:`.projector` -- the OWM/RLS projector of head gradient modification (Eq. 3-4);
- :mod:`.qmf` -- QMF's energy confidence, fusion, ranking loss and per-sample loss history;
- :mod:`.reconboost` -- ReconBoost's boosting loss and reconcilement term;
- :mod:`.relearning` -- D&R's k-means purity, re-learning strength and soft re-initialisation;
- :mod:`.schedule` -- which modality trains at which step (Eq. 1 and the code's per-batch order);
- :mod:`.stages` -- a training stage as a model declares it (the trainer runs them);
- :mod:`.tag_transformer` -- TATE's tag, hiding, transformer encoder and imagination loss;
- :mod:`.umt` -- UMT's unimodal teachers and feature distillation, UME's ensemble average.

A method's switches (paper vs released code, hyper-parameters) are required keyword
arguments of the fusion, head, hook and projector functions and classes here, with no
defaults that could disagree with the configs: their one home is the model's YAML,
``mla_plugin/configs/models/<model>.yaml``.  Only numerical details (dtype, device, the
code's alpha-schedule base, DDP's ``sync_scores``) keep defaults.
"""
