// Every rule that ties config fields together lives in validate(), and changedFields() decides which
// differences a resumed run may accept. Rules that need the data (block_size longer than the text,
// batch_size not divisible by the number of ranks) belong to the data loader and trainer.
import AttnCore
import AttnFormats
import Foundation

extension Config {
  /// Checks each key's own type and range again (so a Config built in code meets the same rules as
  /// one read from a file), then the cross-field rules. Throws the first problem found.
  public func validate() throws {
    let base = Self.directory(of: sourcePath)
    for section in ConfigSchema.sections {
      var scratch = self
      for (key, value) in section.encode(self) {
        try Self.decode(section, key, value, into: &scratch, base: base)
      }
    }
    try checkModel()
    try checkOptimizer()
    try checkSchedule()
    try checkData()
    try checkTask()
  }

  private func checkTask() throws {
    let t = task
    let defaults = TaskConfig()
    if t.kind != .maskedLanguageModel && t.maskProbability != defaults.maskProbability {
      throw fail("task.mask_probability", JSONValue(number: t.maskProbability), "applies only to task.kind \"masked_language_model\"; remove it or set the task")
    }
    switch t.kind {
    case .languageModel:
      if model.attention == .bidirectional {
        throw fail("model.attention", .string("bidirectional"), "a language model predicts the next token, so it must attend causally; bidirectional attention is for task.kind \"masked_language_model\" and \"classification\"")
      }
      try checkNoClassificationKeys()
    case .maskedLanguageModel:
      if let problem = Self.maskTokenProblem(data.tokenizer) { throw fail("data.tokenizer", data.tokenizer.json, problem) }
      if model.attention == .causal {
        throw fail("model.attention", .string("causal"), "a masked language model predicts hidden tokens from both sides, so it attends bidirectionally; remove the key or set \"bidirectional\"")
      }
      try checkNoClassificationKeys()
    case .classification:
      if data.format == .text {
        throw fail("data.format", .string("text"), "classification reads labelled examples: set \"tsv\", \"csv\" or \"jsonl\"")
      }
      if let labels = t.labels, let count = t.numClasses, labels.count != count {
        throw fail("task.num_classes", .integer(String(count)), "disagrees with task.labels, which lists \(labels.count)")
      }
      if t.pooling == .first && model.attention == .causal {
        throw fail("task.pooling", .string("first"), "with causal attention the first token sees nothing after it; use \"last\" or \"mean\", or bidirectional attention")
      }
    }
  }

  /// A language model (next-token or masked) has a dev loss only and none of a classifier's keys.
  private func checkNoClassificationKeys() throws {
    let (t, defaults) = (task, TaskConfig())
    let classificationKeys: [(String, Bool)] = [
      ("labels", t.labels != nil), ("num_classes", t.numClasses != nil), ("pooling", t.pooling != nil),
      ("hidden_size", t.hiddenSize != defaults.hiddenSize), ("truncate", t.truncate != defaults.truncate),
      ("label_field", t.labelField != defaults.labelField), ("label_smoothing", t.labelSmoothing != 0),
      ("class_weights", t.classWeights != nil), ("training.epochs", training.epochs != nil),
      ("training.eval_each_epoch", training.evalEachEpoch),
    ]
    if let (key, _) = classificationKeys.first(where: \.1) {
      let field = key.hasPrefix("training.") ? key : "task.\(key)"
      throw fail(field, .null, "applies only to task.kind \"classification\"; remove it or set the task")
    }
    if let metric = training.bestMetric, metric != .loss {
      throw fail("training.best_metric", .string(metric.rawValue), "a language model has a dev loss only; use \"loss\"")
    }
  }

  /// Why a masked language model cannot have this tokenizer, when the config alone tells: char and
  /// byte tokenizers have no [MASK] token, and a learned BPE has one only when special_tokens lists
  /// it. (A tokenizer file is checked when it is read.)
  private static func maskTokenProblem(_ tokenizer: TokenizerSpec) -> String? {
    let fix = #"learn a BPE with one: {"kind": "bpe", "vocab_size": N, "special_tokens": ["[MASK]"]}"#
    switch tokenizer {
    case .char, .byte:
      return "a masked language model hides tokens behind a [MASK] token, which a \(tokenizer.kind.rawValue) tokenizer does not have; \(fix)"
    case .trainedBPE(_, let specials) where !specials.contains(TokenMasking.maskToken):
      return #"a masked language model hides tokens behind a [MASK] token: add "special_tokens": ["[MASK]"] to this learned BPE"#
    case .bpe, .trainedBPE:
      return nil
    }
  }

  private func fail(_ field: String, _ value: JSONValue, _ message: String) -> ConfigError {
    ConfigError(file: sourcePath, field: field, found: value, message)
  }

  private func checkModel() throws {
    let m = model
    guard m.nEmbd % m.nHead == 0 else {
      let divisors = (1...m.nEmbd).filter { m.nEmbd % $0 == 0 }.map(String.init).joined(separator: ", ")
      throw fail(
        "model.n_head", .integer(String(m.nHead)),
        "n_embd (\(m.nEmbd)) must be divisible by n_head; allowed n_head values: \(divisors)")
    }
    let headSize = m.nEmbd / m.nHead
    if m.positionEncoding == .rope && headSize % 2 != 0 {
      throw fail(
        "model.position_encoding", .string("rope"),
        "rope rotates pairs of dimensions within a head, so the head size n_embd / n_head must be even; "
          + "it is \(m.nEmbd) / \(m.nHead) = \(headSize)")
    }
    if m.positionEncoding == .sinusoidal && m.nEmbd % 2 != 0 {
      throw fail(
        "model.position_encoding", .string("sinusoidal"),
        "sinusoidal encodings come in sin/cos pairs, so n_embd must be even; it is \(m.nEmbd)")
    }
  }

  private func checkOptimizer() throws {
    let o = optimizer.settings
    // The update multiplies by the rate as a 32-bit float: below its normal range the run would
    // train nothing, silently.
    if !Float(optimizer.learningRate).isNormal {
      throw fail(
        "optimizer.learning_rate", .number(optimizer.learningRate),
        "becomes \(Float(optimizer.learningRate)) as the 32-bit float the update computes with (the smallest normal one is \(Float.leastNormalMagnitude)); the weights would not move")
    }
    if o.nesterov && (o.kind != .sgd || o.momentum == 0) {
      throw fail(
        "optimizer.nesterov", .bool(true),
        "Nesterov momentum needs kind \"sgd\" and momentum > 0; here kind is \"\(o.kind.rawValue)\" "
          + "and momentum is \(o.momentum)")
    }
    if o.momentum != 0 && (o.kind == .adam || o.kind == .adamw) {
      throw fail(
        "optimizer.momentum", .number(Double("\(o.momentum)")!),
        "momentum applies only to kinds \"sgd\" and \"rmsprop\"; \"\(o.kind.rawValue)\" takes its momentum "
          + "from beta1, so remove momentum or set it to 0")
    }
  }

  private func checkSchedule() throws {
    let s = schedule
    // With a constant schedule min_lr is never reached, so only decaying schedules must respect it.
    // A default that breaks a rule is easy to miss in one's own file, so the message says so.
    let defaults = ScheduleConfig()
    if s.kind != .constant && s.minLR > optimizer.learningRate {
      throw fail(
        "schedule.min_lr", .number(s.minLR),
        "must be <= optimizer.learning_rate (\(optimizer.learningRate)), the rate a \"\(s.kind.rawValue)\" "
          + "schedule decays from" + (s.minLR == defaults.minLR ? "; this is the default, so set min_lr" : ""))
    }
    if s.warmupSteps > decaySteps {
      let horizon =
        s.decaySteps == nil
        ? "training.max_steps (\(decaySteps)), as schedule.decay_steps is not set"
        : "schedule.decay_steps (\(decaySteps))"
      throw fail(
        "schedule.warmup_steps", .integer(String(s.warmupSteps)),
        "warmup must end by the last decay step: must be <= \(horizon)"
          + (s.warmupSteps == defaults.warmupSteps ? "; this is the default, so set warmup_steps" : ""))
    }
  }

  private func checkData() throws {
    guard !data.devPaths.isEmpty else { return }
    // A default train_fraction cannot be told from an explicit one, so an explicit value equal to
    // the default passes; resolvedJSON() writes that default, and must read back.
    if data.trainFraction != DataConfig().trainFraction {
      throw fail(
        "data.train_fraction", .number(data.trainFraction),
        "has no effect when data.dev_path is set, because the dev text is used for evaluation; "
          + "remove one of the two")
    }
    if let shared = data.devPaths.first(where: data.trainPaths.contains) {
      throw fail(
        "data.dev_path", .string(shared),
        "is the same file as data.train_path, so evaluation would measure training loss; "
          + "leave dev_path out to hold out the end of the training text instead")
    }
  }

  /// The field paths ("training.max_steps") whose values differ from `old`, in table order, split by
  /// whether a resumed run may accept them (each row of the schema says; see ConfigSchema.swift):
  /// - unsafe: what changes the model, the data, the sequence of batches and random numbers, or the
  ///   meaning of the saved optimizer state. Resuming across one of these would not continue the run
  ///   that was saved.
  /// - safe: everything else (step counts and intervals, threads, the optimizer's hyperparameters and
  ///   the schedule), which takes effect from the next step.
  /// sourcePath is not compared.
  /// A key left null that the old config's data settled (a classifier's labels and class count) is
  /// not a change.
  public func changedFields(comparedTo old: Config) -> (unsafe: [String], safe: [String]) {
    var new = self
    if new.task.labels == nil { new.task.labels = old.task.labels }
    if new.task.numClasses == nil { new.task.numClasses = old.task.numClasses }
    if new.training.epochs != nil && new.training.epochs == old.training.epochs { new.training.maxSteps = old.training.maxSteps }
    var unsafe: [String] = []
    var safe: [String] = []
    for section in ConfigSchema.sections {
      let rows = zip(section.rows, zip(section.encode(new), section.encode(old)))
      for (row, (new, before)) in rows where new.value != before.value {
        let field = "\(section.name).\(row.key)"
        if row.fixedOnResume { unsafe.append(field) } else { safe.append(field) }
      }
    }
    return (unsafe, safe)
  }
}
