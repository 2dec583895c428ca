// The one table of config keys. A row gives a key, the field it fills, its default, the range that
// key alone may take, and its meaning; the README's config reference is generated from these rows
// (ConfigReference.swift; a test fails when the README differs). A new setting is a field in
// Config.swift and a row here; a rule between keys goes in ConfigValidation.swift.

import AttnCore

enum ConfigSchema {
  // One line per key, so the table reads as one (hence no reformatting).
  // swift-format-ignore
  static var model: ConfigSection<ModelConfig> {
    ConfigSection("model", fixedOnResume: true, [
      .int("n_layer", \.nLayer, default: 4, 1...4096, "Transformer blocks."),
      .int("n_head", \.nHead, default: 4, 1...4096, "Attention heads per block; must divide `n_embd`."),
      .int("n_embd", \.nEmbd, default: 128, 1...65536, "Width of the residual stream; even for `\"sinusoidal\"`."),
      .int("block_size", \.blockSize, default: 64, 1...1_048_576, "Context length in tokens; the training and dev texts must be longer (checked when the data is loaded)."),
      .double("dropout", \.dropout, default: 0, .zeroToBelowOne, "Dropout probability after the embeddings, on the attention weights and on each residual branch."),
      .choice("position_encoding", \.positionEncoding, default: .learned, "`\"learned\"`: a trained table of positions (`wpe`). `\"sinusoidal\"`: fixed sin/cos added to the embeddings; needs an even `n_embd`. `\"rope\"`: rotary encoding of queries and keys; needs an even head size `n_embd / n_head`."),
      .bool("tie_embeddings", \.tieEmbeddings, default: true, "Reuse the token embedding `wte` as the output layer; `false` gives the model a separate `lm_head`."),
      .optionalInt("vocab_size", \.vocabSize, 1...16_777_216, "Pads the vocabulary to this many ids (as nanoGPT pads GPT-2's 50257 to 50304); the extra ids never occur in the data. At least the tokenizer's vocabulary (checked when the data is loaded).", null: "exactly the tokenizer's vocabulary."),
      .optionalChoice("attention", \.attention, "`\"causal\"`: a token sees those before it (a decoder); `\"bidirectional\"`: every real token of its sequence (an encoder: for classification and the masked language model).", null: "causal for a language model, bidirectional for the masked language model and classification."),
    ])
  }

  // swift-format-ignore
  static var optimizer: ConfigSection<OptimizerConfig> {
    ConfigSection("optimizer", [
      .choice("kind", \.settings.kind, default: .adamw, "`\"sgd\"`, `\"adam\"`, `\"adamw\"` or `\"rmsprop\"`, with PyTorch's update rules. AdamW decays weights directly; the others add weight decay to the gradient (L2).").fixedOnResume(),
      .double("learning_rate", \.learningRate, default: 1e-3, .positive, "Peak learning rate, reached at the end of warmup."),
      .float("weight_decay", \.settings.weightDecay, default: 0.1, .nonNegative, "Applies to weight matrices, to the embeddings when `decay_embeddings` is true, never to biases or LayerNorm parameters."),
      .float("beta1", \.settings.beta1, default: 0.9, .zeroToBelowOne, "Adam and AdamW: decay of the running mean of gradients."),
      .float("beta2", \.settings.beta2, default: 0.99, .zeroToBelowOne, "Adam and AdamW: decay of the running mean of squared gradients."),
      .float("eps", \.settings.eps, default: 1e-8, .positive, "Added to the denominator of Adam, AdamW and RMSprop."),
      .float("momentum", \.settings.momentum, default: 0, .zeroToBelowOne, "SGD and RMSprop only; must stay 0 for `\"adam\"` and `\"adamw\"`, which use `beta1`."),
      .bool("nesterov", \.settings.nesterov, default: false, "SGD only: Nesterov momentum. Needs `kind` `\"sgd\"` and `momentum` above 0."),
      .float("alpha", \.settings.alpha, default: 0.99, .zeroToBelowOne, "RMSprop only: decay of the running mean of squared gradients."),
      .double("grad_clip", \.gradClip, default: 1.0, .nonNegative, "Largest global gradient norm; larger gradients are scaled down to it. 0 turns clipping off."),
      .bool("decay_embeddings", \.settings.decayEmbeddings, default: true, "Whether `wte`, `wpe` and `lm_head` get weight decay."),
    ])
  }

  // swift-format-ignore
  static var schedule: ConfigSection<ScheduleConfig> {
    ConfigSection("schedule", [
      .choice("kind", \.kind, default: .cosine, "The rate rises linearly to `learning_rate` over `warmup_steps`, then `\"constant\"` stays there, `\"cosine\"` and `\"linear\"` fall to `min_lr` by the decay step and stay there."),
      .int("warmup_steps", \.warmupSteps, default: 100, 0...Int.max, "Steps of linear warmup; at most the decay step (`decay_steps`, or `training.max_steps` when that is not set)."),
      .optionalInt("decay_steps", \.decaySteps, 1...Int.max, "The step, counted from the start with warmup included, at which the rate reaches `min_lr`.", null: "`training.max_steps`."),
      .double("min_lr", \.minLR, default: 1e-4, .nonNegative, "The rate at the end of decay; at most `optimizer.learning_rate` for `\"cosine\"` and `\"linear\"`."),
    ])
  }

  // swift-format-ignore
  static var training: ConfigSection<TrainingConfig> {
    ConfigSection("training", [
      .int("batch_size", \.batchSize, default: 12, 1...1_048_576, "Sequences per micro-step, summed over all ranks (each rank takes an equal share, so the number of ranks must divide it).").fixedOnResume(),
      .int("grad_accum_steps", \.gradAccumSteps, default: 1, 1...1_048_576, "Micro-steps whose gradients are summed into one optimizer step.").fixedOnResume(),
      .int("max_steps", \.maxSteps, default: 2000, 1...Int.max, "Optimizer steps in the whole run."),
      .seed("seed", \.seed, default: 1337, "Seeds initialisation, batch order and dropout.").fixedOnResume(),
      .int("eval_interval", \.evalInterval, default: 250, 0...Int.max, "Steps between evaluations on the dev text; 0 evaluates only at the end."),
      .optionalInt("eval_tokens", \.evalTokens, 2...Int.max, "Evaluate only the first this many tokens of the dev split (in whole windows of `block_size`), for dev sets too large to go through every time.", null: "the whole dev split."),
      .int("log_interval", \.logInterval, default: 10, 1...Int.max, "Steps between log lines."),
      .int("checkpoint_interval", \.checkpointInterval, default: 250, 0...Int.max, "Steps between checkpoints; 0 checkpoints only at the end."),
      .int("keep_checkpoints", \.keepCheckpoints, default: 3, 1...Int.max, "How many of the newest checkpoints to keep on disk (and the newest one a later step has succeeded on, while newer ones are on trial: see \"Non-finite steps\")."),
      .int("max_skipped_steps", \.maxSkippedSteps, default: 5, 0...1_000_000, "A step whose loss or gradient is not finite on any rank is skipped on every rank (no update; the ranks agree through the step's sums) and logged; no checkpoint is written while the latest step was skipped (the weights it ran on are not known good), so after this many skipped in a row training stops and the newest checkpoint is the last good state. 0: stop at the first."),
      .double("deadline_s", \.deadlineSeconds, default: 30, .nonNegative, "Collective deadline (multi-rank runs): a rank that waits in a collective longer than the deadline while another rank has made no progress for as long (stopped, hung, gone) ends the job, naming that rank and what every rank was doing. The deadline is the larger of this and `deadline_step_multiple` x the last step's time. 0 turns the watchdog off."),
      .double("deadline_step_multiple", \.deadlineStepMultiple, default: 20, .positive, "The deadline in training steps: it grows with a slow model's step time."),
      .double("deadline_startup_s", \.deadlineStartupSeconds, default: 300, .nonNegative, "The deadline during the first 3 steps of a start, before a step has been timed."),
      .double("deadline_slow_work_s", \.deadlineSlowWorkSeconds, default: 300, .nonNegative, "How long a rank that is evaluating, writing a checkpoint or starting may go without progress before it counts as stalled."),
      .int("consistency_check_interval", \.consistencyCheckInterval, default: 100, 0...Int.max, "Steps between checks that all ranks hold identical parameters; 0 turns the check off."),
      .optionalInt("threads", \.threads, 1...4096, "Compute threads per rank (they share every kernel, sgemms included); the environment variable `ATTN_TRAIN_THREADS` overrides it.", null: "the node's cores divided by the ranks on the node."),
      .optionalNumber("epochs", \.epochs, .positive, "Classification: train for this many passes over the training examples (each pass in a new shuffled order) instead of `max_steps`, which the run then derives (and records in the resolved config).", null: "`max_steps` decides."),
      .optionalChoice("best_metric", \.bestMetric, "The dev figure that picks the `best` checkpoint and that `patience` watches: `\"loss\"`, or a classifier's `\"accuracy\"` or `\"macro_f1\"`.", null: "accuracy for classification, loss for a language model."),
      .optionalInt("patience", \.patience, 1...Int.max, "Early stopping: after this many evaluations in a row without a better `best_metric`, training stops (with a final checkpoint; the `best` one is kept).", null: "train to the end."),
      .optionalPath("init_from", \.initFrom, "A checkpoint directory of ours (a run's `checkpoints/latest` means the one it names), or a run directory (its newest valid checkpoint), whose weights a fresh run starts from instead of random ones: the embeddings, blocks and final norm (a classifier's head is always new). `n_layer`, `n_head`, `n_embd` and `position_encoding` must match it, `block_size` be at most its; the run uses its tokenizer, which `data.tokenizer` must name (a checked error otherwise). A resumed run continues from its own checkpoint. `null`: random initialisation."),
      .bool("eval_each_epoch", \.evalEachEpoch, default: false, "Classification: also evaluate at the end of every epoch (besides every `eval_interval` steps)."),
      .double("gradient_bucket_mb", \.gradientBucketMB, default: 4, .positive, "Gradients are summed over ranks (reduce-scattered) in buckets of about this many MiB; a bucket never splits a tensor.").renamed(from: "allreduce_bucket_mb"),
      .bool("reduce_during_backward", \.reduceDuringBackward, default: true, "A communication thread reduce-scatters each bucket while backward computes the layers below it; `false` reduces the same buckets after backward. Same results either way.").renamed(from: "overlap_allreduce"),
    ])
  }

  // swift-format-ignore
  static var data: ConfigSection<DataConfig> {
    ConfigSection("data", fixedOnResume: true, [
      .paths("train_path", \.trainPaths, required: true, "The training text: a file, a glob pattern (`*`, `?`, `[...]`), or a list of them, read in the order given (a pattern's matches sorted by name)."),
      .paths("dev_path", \.devPaths, required: false, "A separate text for evaluation, named the same ways; must share no file with `train_path`. Without it the last part of the training text is held out (`train_fraction`)."),
      .double("train_fraction", \.trainFraction, default: 0.9, .openUnitInterval, "Without `dev_path`: the share of the training text used for training; the rest is the dev split. Text files are cut at a character of all of them together (one file: nanoGPT's split), JSONL at a document. Setting it together with `dev_path` is an error, since it would have no effect."),
      .choice("format", \.format, default: .text, "`\"text\"`: each file is one document. `\"jsonl\"`: each line is a JSON object whose `text_field` holds one document (and, for classification, `task.label_field` its label). `\"tsv\"`, `\"csv\"`: a header row naming the columns, then an example per row (a language model reads each row's `text_field` as a document, other columns unread, and needs `dev_path`); a field that starts with `\"` is quoted (`\"\"` inside is a quote). With a BPE tokenizer, documents are separated by its `<|endoftext|>`."),
      .string("text_field", \.textField, default: "text", "The key of each JSONL line's text, or the column of a TSV or CSV row's."),
      .tokenizer("tokenizer", \.tokenizer, "`\"char\"`: one token per distinct character (Unicode scalar) of the train and dev texts. `\"byte\"`: one token per byte value, 256 in all. `{\"kind\": \"bpe\", \"path\": FILE}`: a byte-level BPE read from FILE, which may be a tiktoken ranks file (`.tiktoken`; GPT-2's ships as `data/tokenizers/gpt2.tiktoken`), a Hugging Face `tokenizer.json`, or GPT-2's `vocab.json` with `merges.txt` beside it. `{\"kind\": \"bpe\", \"vocab_size\": N}`: a byte-level BPE of N ids learned from the training split on first use and kept as `<run_dir>/tokenizer.json`; `\"special_tokens\": [\"[MASK]\", ...]` adds special tokens after `<|endoftext|>` (within the N)."),
      .optionalPath("prepared_dir", \.preparedDirectory, "Where the token shards are kept (`attn-train prepare` writes them; training and `eval` prepare them first when they are missing). `null`: the run directory's `data/`. Runs on the same data and tokenizer may share one.").fixedOnResume(false),
      .double("shard_mb", \.shardMB, default: 256, .positive, "MiB of source text per token shard (a shard is encoded by one rank; smaller shards spread preparation over more ranks)."),
    ])
  }

  // swift-format-ignore
  static var task: ConfigSection<TaskConfig> {
    ConfigSection("task", fixedOnResume: true, [
      .choice("kind", \.kind, default: .languageModel, "`\"language_model\"`: predict the next token. `\"masked_language_model\"`: hide some tokens of each window and predict them from both sides, as BERT is pretrained (an encoder to fine-tune a classifier from; the tokenizer needs a `[MASK]` token). `\"classification\"`: predict one label per example (TSV, CSV or JSONL data), reporting dev accuracy."),
      .string("label_field", \.labelField, default: "label", "Classification: the label's column (TSV, CSV) or key (JSONL); labels may be strings or integers."),
      .optionalStrings("labels", \.labels, "Classification: the labels in id order; a label outside the list is an error.", null: "the training data's labels, sorted (as numbers when all are integers)."),
      .optionalInt("num_classes", \.numClasses, 2...65536, "Classification: must equal the number of labels.", null: "the number of labels."),
      .optionalChoice("pooling", \.pooling, "Classification: how a sequence becomes one vector: `\"mean\"` of its real tokens, `\"max\"` of each channel over its real tokens, `\"first\"` token (a `[CLS]` token the tokenizer must have), or `\"last\"` real token (the natural choice for causal attention).", null: "mean with bidirectional attention, last with causal."),
      .int("hidden_size", \.hiddenSize, default: 0, 0...65536, "Classification: width of a hidden layer (GELU, then `model.dropout`) before the class logits; 0 for none."),
      .choice("truncate", \.truncate, default: .end, "Classification: an example longer than `block_size` loses its `\"end\"` (the start is kept) or its `\"start\"`."),
      .double("label_smoothing", \.labelSmoothing, default: 0, .zeroToBelowOne, "Classification: train toward (1 - e) on the true label and e / classes on every class, instead of all on the true label. Dev loss is reported without it."),
      .double("mask_probability", \.maskProbability, default: 0.15, .openUnitInterval, "Masked language model: the share of each window's tokens to predict, round(p x block_size) positions (at least 1) drawn from (seed, step, sample); each is replaced by `[MASK]` 80% of the time, by a random token 10%, kept 10%, as BERT's. The dev windows are masked alike, the same way at every evaluation."),
      .classWeights("class_weights", \.classWeights, "Classification: each example's loss is multiplied by its label's weight (the step's loss stays a mean over examples). `\"balanced\"`: examples / (classes x examples of the label), from the training set. An object `{\"label\": weight, ...}`: the labels named, others 1."),
    ])
  }

  // swift-format-ignore
  static var output: ConfigSection<OutputConfig> {
    ConfigSection("output", [
      .path("run_dir", \.runDir, defaultText: "`runs/<config file name without .json>`, beside the config", "Where logs, the resolved config and checkpoints are written."),
    ])
  }

  /// Every section in file order, bound to its place in Config. (Computed, as the rows are: they are
  /// closures over key paths, cheap to build, and a stored table would have to be Sendable.)
  static var sections: [AnyConfigSection] {
    [
      AnyConfigSection(model, \.model, defaults: ModelConfig()),
      AnyConfigSection(optimizer, \.optimizer, defaults: OptimizerConfig()),
      AnyConfigSection(schedule, \.schedule, defaults: ScheduleConfig()),
      AnyConfigSection(training, \.training, defaults: TrainingConfig()),
      AnyConfigSection(data, \.data, defaults: DataConfig()),
      AnyConfigSection(task, \.task, defaults: TaskConfig()),
      AnyConfigSection(output, \.output, defaults: OutputConfig()),
    ]
  }
}
