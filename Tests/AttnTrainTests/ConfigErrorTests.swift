// Every way a config can be refused. Each case checks the field path and the key words of the
// message (the value found and what is allowed), not the whole wording.
import AttnTrain
import AttnFormats
import Foundation
import Testing

struct BadConfig: Sendable, CustomTestStringConvertible {
  let json: String
  /// The expected ConfigError.field; nil for problems with the file as a whole.
  let field: String?
  let words: [String]
  var testDescription: String { json }

  /// `sections` as a config, with a valid data section first unless `sections` starts with one.
  init(_ sections: String, _ field: String?, _ words: String...) {
    let data = sections.hasPrefix(#""data""#) ? "" : #""data": {"train_path": "input.txt"}, "#
    self.json = "{" + data + sections + "}"
    self.field = field
    self.words = words
  }

  /// The whole file as given.
  init(file: String, _ field: String?, _ words: String...) {
    self.json = file
    self.field = field
    self.words = words
  }
}

@Suite struct ConfigErrorTests {
  static let unknownNames = [
    BadConfig(
      #""optimizer": {"lerning_rate": 0.01}"#, "optimizer.lerning_rate", "= 0.01", "did you mean \"learning_rate\"?"),
    BadConfig(#""optimizer": {"learningRate": 0.01}"#, "optimizer.learningRate", "did you mean \"learning_rate\"?"),
    BadConfig(#""model": {"n_haed": 2}"#, "model.n_haed", "did you mean \"n_head\"?"),
    BadConfig(
      #""model": {"learning_rate": 0.01}"#, "model.learning_rate",
      "\"learning_rate\" belongs in section \"optimizer\"", "not \"model\""),
    BadConfig(#""model": {"kind": "adam"}"#, "model.kind", "\"optimizer\", \"schedule\" or \"task\""),
    BadConfig(#""model": {"lerning_rate": 0.01}"#, "model.lerning_rate", "\"learning_rate\" in section \"optimizer\""),
    BadConfig(#""model": {"colour": "blue"}"#, "model.colour", "unknown key", "n_layer, n_head, n_embd"),
    BadConfig(#""modle": {"n_layer": 2}"#, "modle", "unknown section", "did you mean \"model\"?"),
    BadConfig(#""extras": {}"#, "extras", "unknown section", "\"model\", \"optimizer\""),
    BadConfig(#""learning_rate": 0.01"#, "learning_rate", "inside \"optimizer\""),
  ]

  static let wrongTypes = [
    BadConfig(#""model": {"n_layer": "4"}"#, "model.n_layer", "= \"4\"", "expected an integer, found a string"),
    BadConfig(#""model": {"n_layer": 4.5}"#, "model.n_layer", "= 4.5", "expected an integer"),
    BadConfig(#""model": {"n_layer": 4.0}"#, "model.n_layer", "expected an integer", "without a decimal point"),
    BadConfig(#""schedule": {"decay_steps": 1e3}"#, "schedule.decay_steps", "expected an integer or null"),
    BadConfig(#""model": {"tie_embeddings": 1}"#, "model.tie_embeddings", "expected true or false, found an integer"),
    BadConfig(#""model": {"dropout": "0.1"}"#, "model.dropout", "expected a number, found a string"),
    BadConfig(#""model": {"dropout": null}"#, "model.dropout", "expected a number, found null"),
    BadConfig(
      #""model": {"position_encoding": 1}"#, "model.position_encoding", "\"learned\", \"sinusoidal\", \"rope\""),
    BadConfig(#""model": 4"#, "model", "expected an object"),
    BadConfig(#""data": {"train_path": 4}"#, "data.train_path", "expected a path string"),
  ]

  static let outOfRange = [
    BadConfig(#""optimizer": {"learning_rate": -0.001}"#, "optimizer.learning_rate", "= -0.001", "must be > 0"),
    BadConfig(#""optimizer": {"learning_rate": 0}"#, "optimizer.learning_rate", "must be > 0"),
    BadConfig(#""model": {"n_layer": 0}"#, "model.n_layer", "= 0", "1...4096"),
    BadConfig(#""model": {"n_embd": 99999999999999999999}"#, "model.n_embd", "1...65536"),
    BadConfig(#""model": {"dropout": 1}"#, "model.dropout", "[0, 1)"),
    BadConfig(#""optimizer": {"beta2": 1.0}"#, "optimizer.beta2", "[0, 1)"),
    BadConfig(#""optimizer": {"beta1": -0.1}"#, "optimizer.beta1", "[0, 1)"),
    BadConfig(#""optimizer": {"weight_decay": 1e400}"#, nil, "malformed JSON", "too large"),
    BadConfig(#""optimizer": {"eps": 1e999999999999999999999}"#, nil, "too large"),
    BadConfig(#""training": {"seed": -1}"#, "training.seed", "= -1", "0...18446744073709551615"),
    BadConfig(#""training": {"seed": 18446744073709551616}"#, "training.seed", "0...18446744073709551615"),
    BadConfig(#""training": {"keep_checkpoints": 0}"#, "training.keep_checkpoints", ">= 1"),
    BadConfig(#""training": {"eval_interval": -1}"#, "training.eval_interval", ">= 0"),
    BadConfig(#""training": {"threads": 0}"#, "training.threads", "1...4096"),
    BadConfig(#""data": {"train_path": "t.txt", "train_fraction": 1}"#, "data.train_fraction", "(0, 1)"),
    BadConfig(#""data": {"train_path": ""}"#, "data.train_path", "must not be empty"),
    BadConfig(
      #""optimizer": {"kind": "admaw"}"#, "optimizer.kind", "= \"admaw\"",
      "\"sgd\", \"adam\", \"adamw\", \"rmsprop\"", "did you mean \"adamw\"?"),
    BadConfig(#""data": {"train_path": "t.txt", "tokenizer": "word"}"#, "data.tokenizer", "\"char\", \"byte\""),
    BadConfig(#""data": {"train_path": "t.txt", "tokenizer": "chr"}"#, "data.tokenizer", "did you mean \"char\"?"),
    BadConfig(#""data": {"train_path": "t.txt", "tokenizer": "bpe"}"#, "data.tokenizer", "read from a file", "\"path\""),
    BadConfig(#""data": {"train_path": "t.txt", "tokenizer": {"kind": "bpe"}}"#, "data.tokenizer", "needs \"path\""),
    BadConfig(#""data": {"train_path": "t.txt", "tokenizer": {"kind": "wordpiece", "path": "v.txt"}}"#, "data.tokenizer", "\"kind\": \"bpe\""),
    BadConfig(#""data": {"train_path": "t.txt", "tokenizer": {"kind": "bpe", "path": "t.json", "size": 3}}"#, "data.tokenizer", "unknown key \"size\""),
    BadConfig(#""data": {"train_path": "t.txt", "tokenizer": 3}"#, "data.tokenizer", "found an integer"),
  ]

  static let crossField = [
    BadConfig(
      #""model": {"n_head": 3, "n_embd": 64}"#, "model.n_head", "= 3", "n_embd (64) must be divisible by n_head",
      "allowed n_head values: 1, 2, 4, 8, 16, 32, 64"),
    BadConfig(
      #""model": {"n_head": 4, "n_embd": 36, "position_encoding": "rope"}"#, "model.position_encoding",
      "= \"rope\"", "even", "36 / 4 = 9"),
    BadConfig(
      #""model": {"n_head": 3, "n_embd": 33, "position_encoding": "sinusoidal"}"#, "model.position_encoding",
      "n_embd must be even", "33"),
    BadConfig(
      #""optimizer": {"learning_rate": 1e-4}, "schedule": {"min_lr": 1e-3}"#, "schedule.min_lr", "= 0.001",
      "optimizer.learning_rate (0.0001)"),
    BadConfig(#""optimizer": {"learning_rate": 1e-5}"#, "schedule.min_lr", "= 0.0001", "default"),
    BadConfig(
      #""training": {"max_steps": 50}"#, "schedule.warmup_steps", "= 100", "training.max_steps (50)",
      "default"),
    BadConfig(
      #""schedule": {"warmup_steps": 20, "decay_steps": 10}"#, "schedule.warmup_steps", "schedule.decay_steps (10)"),
    BadConfig(#""optimizer": {"nesterov": true}"#, "optimizer.nesterov", "\"sgd\"", "momentum > 0"),
    BadConfig(#""optimizer": {"kind": "sgd", "nesterov": true}"#, "optimizer.nesterov", "momentum > 0"),
    BadConfig(#""optimizer": {"momentum": 0.9}"#, "optimizer.momentum", "= 0.9", "\"sgd\" and \"rmsprop\"", "beta1"),
    BadConfig(
      #""data": {"train_path": "t.txt", "dev_path": "d.txt", "train_fraction": 0.8}"#, "data.train_fraction",
      "= 0.8", "has no effect", "dev_path"),
    BadConfig(
      #""data": {"train_path": "t.txt", "dev_path": "./sub/../t.txt"}"#, "data.dev_path",
      "= \"/tmp/cfgs/t.txt\"", "same file as data.train_path"),
  ]

  /// Values a Double range admits but the 32-bit floats training computes with do not: each of these
  /// passed validation once and gave a NaN at step 2 (eps, beta2) or trained nothing (learning_rate).
  static let float32 = [
    BadConfig(#""optimizer": {"eps": 1e-50}"#, "optimizer.eps", "becomes 0.0 as the 32-bit float", "must be > 0"),
    BadConfig(#""optimizer": {"eps": 1e-40}"#, "optimizer.eps", "below the smallest normal 32-bit float"),
    BadConfig(#""optimizer": {"beta2": 0.99999999999}"#, "optimizer.beta2", "becomes 1.0", "must be in [0, 1)"),
    BadConfig(#""optimizer": {"learning_rate": 1e-300}"#, "optimizer.learning_rate", "becomes 0.0", "would not move"),
  ]

  /// Data a masked language model accepts: a learned BPE with a [MASK] token.
  static let maskedData = #""data": {"train_path": "t.txt", "tokenizer": {"kind": "bpe", "vocab_size": 300, "special_tokens": ["[MASK]"]}}, "#

  /// The task section and the keys only a classifier reads.
  static let tasks = [
    BadConfig(#""task": {"label_smoothing": 0.1}"#, "task.label_smoothing", "only to task.kind \"classification\""),
    BadConfig(#""training": {"epochs": 2}"#, "training.epochs", "only to task.kind \"classification\""),
    BadConfig(#""training": {"best_metric": "accuracy"}"#, "training.best_metric", "a language model has a dev loss only"),
    BadConfig(#""model": {"attention": "bidirectional"}"#, "model.attention", "must attend causally"),
    BadConfig(#""task": {"kind": "classification"}"#, "data.format", "= \"text\"", "\"tsv\", \"csv\" or \"jsonl\""),
    BadConfig(
      #""data": {"train_path": "t.tsv", "format": "tsv"}, "task": {"kind": "classification", "labels": ["a", "b"], "num_classes": 3}"#,
      "task.num_classes", "disagrees with task.labels, which lists 2"),
    BadConfig(
      #""data": {"train_path": "t.tsv", "format": "tsv"}, "model": {"attention": "causal"}, "task": {"kind": "classification", "pooling": "first"}"#,
      "task.pooling", "the first token sees nothing after it"),
    BadConfig(#""task": {"kind": "classifier"}"#, "task.kind", "\"language_model\", \"masked_language_model\", \"classification\""),
    BadConfig(#""task": {"label_smoothing": 1}"#, "task.label_smoothing", "at least 0 and below 1"),
    BadConfig(#""task": {"class_weights": "even"}"#, "task.class_weights", "expected \"balanced\", an object of label: weight, or null"),
    BadConfig(#""task": {"class_weights": {}}"#, "task.class_weights", "found an empty object"),
    BadConfig(#""task": {"class_weights": {"pos": "2"}}"#, "task.class_weights", "the weight of label \"pos\": expected a number"),
    BadConfig(#""task": {"class_weights": {"pos": 0}}"#, "task.class_weights", "the weight of label \"pos\": must be > 0"),
    BadConfig(#""task": {"labels": ["a", "a"]}"#, "task.labels", "lists a label twice"),
    BadConfig(#""training": {"patience": 0}"#, "training.patience", "= 0", "an integer >= 1"),
    BadConfig(#""task": {"mask_probability": 0.2}"#, "task.mask_probability", "only to task.kind \"masked_language_model\""),
    BadConfig(maskedData + #""task": {"kind": "masked_language_model", "mask_probability": 1}"#, "task.mask_probability", "above 0 and below 1"),
    BadConfig(maskedData + #""model": {"attention": "causal"}, "task": {"kind": "masked_language_model"}"#, "model.attention", "attends bidirectionally"),
    BadConfig(maskedData + #""task": {"kind": "masked_language_model", "pooling": "mean"}"#, "task.pooling", "only to task.kind \"classification\""),
    BadConfig(maskedData + #""training": {"best_metric": "accuracy"}, "task": {"kind": "masked_language_model"}"#, "training.best_metric", "dev loss only"),
    BadConfig(#""task": {"kind": "masked_language_model"}"#, "data.tokenizer", "= \"char\"", "[MASK] token, which a char tokenizer does not have"),
    BadConfig(
      #""data": {"train_path": "t.txt", "tokenizer": {"kind": "bpe", "vocab_size": 300}}, "task": {"kind": "masked_language_model"}"#,
      "data.tokenizer", "add \"special_tokens\": [\"[MASK]\"]"),
    BadConfig(
      #""data": {"train_path": "t.txt", "tokenizer": {"kind": "bpe", "vocab_size": 300, "special_tokens": "[MASK]"}}"#,
      "data.tokenizer", "a list of strings"),
    BadConfig(
      #""data": {"train_path": "t.txt", "tokenizer": {"kind": "bpe", "vocab_size": 300, "special_tokens": ["[MASK]", "[MASK]"]}}"#,
      "data.tokenizer", "lists \"[MASK]\" twice"),
    BadConfig(
      #""data": {"train_path": "t.txt", "tokenizer": {"kind": "bpe", "vocab_size": 300, "special_tokens": ["<|endoftext|>"]}}"#,
      "data.tokenizer", "every learned BPE has already"),
    BadConfig(
      #""data": {"train_path": "t.txt", "tokenizer": {"kind": "bpe", "vocab_size": 258, "special_tokens": ["[MASK]", "[CLS]"]}}"#,
      "data.tokenizer", "259...16777216", "the 2 special tokens"),
    BadConfig(
      #""data": {"train_path": "t.txt", "tokenizer": {"kind": "bpe", "path": "t.json", "special_tokens": ["[MASK]"]}}"#,
      "data.tokenizer", "a tokenizer file brings its own"),
  ]

  static let wholeFile = [
    BadConfig(file: "{}", "data.train_path", "missing", "train_path"),
    BadConfig(file: #"{"data": {"dev_path": "d.txt"}}"#, "data.train_path", "missing"),
    BadConfig(file: "[]", nil, "top level must be an object", "found an array"),
    BadConfig(file: "4", nil, "top level must be an object", "found an integer"),
    BadConfig(file: "", nil, "malformed JSON", "end of input"),
    BadConfig(file: "{\"model\": {\"n_layer\": 4,}\n}", nil, "malformed JSON", "trailing comma", "line 1, column 25"),
    BadConfig(file: "{\n  \"model\": {\"n_layer\": 4}\n", nil, "malformed JSON", "end of input", "line 3"),
    BadConfig(file: "{\n  // a comment\n}", nil, "comments", "line 2, column 3"),
    BadConfig(file: #"{"model": {}, "model": {}}"#, nil, "duplicate key \"model\"", "column 15"),
    BadConfig(file: #"{"model": {'n_layer': 4}}"#, nil, "double quotes"),
  ]

  @Test(arguments: unknownNames + wrongTypes + outOfRange + crossField + float32 + tasks + wholeFile)
  func refuses(_ bad: BadConfig) throws {
    let error = try #require(throws: ConfigError.self) {
      try Config.parse(json: Data(bad.json.utf8), sourcePath: "/tmp/cfgs/tiny.json")
    }
    #expect(error.field == bad.field, "\(error)")
    #expect(error.description.hasPrefix("/tmp/cfgs/tiny.json: " + (bad.field ?? "")), "\(error)")
    for word in bad.words {
      #expect(error.description.contains(word), "missing \(word.debugDescription) in: \(error)")
    }
  }

  @Test func theStyleGuidesExampleReadsAsPromised() throws {
    let error = try #require(throws: ConfigError.self) {
      try Config.parse(
        json: Data(#"{"data": {"train_path": "t"}, "model": {"n_head": 3, "n_embd": 64}}"#.utf8),
        sourcePath: "Configs/tiny.json")
    }
    #expect(
      error.description
        == "Configs/tiny.json: model.n_head = 3: n_embd (64) must be divisible by n_head; "
        + "allowed n_head values: 1, 2, 4, 8, 16, 32, 64")
    #expect(error.value == "3")
  }

  @Test func rulesThatDoNotApplyAreNotEnforced() throws {
    // A constant schedule never reaches min_lr; rmsprop takes momentum; a dev text with the
    // default train_fraction (as resolvedJSON writes it) is fine.
    let config = try parseConfig(
      #""optimizer": {"kind": "rmsprop", "momentum": 0.5, "learning_rate": 1e-5}, "#
        + #""schedule": {"kind": "constant"}"#)
    #expect(config.schedule.minLR > config.optimizer.learningRate)
    let json = #"{"data": {"train_path": "t.txt", "dev_path": "d.txt", "train_fraction": 0.9}}"#
    let withDev = try Config.parse(json: Data(json.utf8), sourcePath: "/tmp/cfgs/x.json")
    #expect(withDev.data.devPaths == ["/tmp/cfgs/d.txt"])
  }
}
