// Labelled examples as files hold them: TSV and CSV with quoted fields, JSONL with string or integer
// labels; the label list, truncation at either end and the [CLS] rule; every malformed input
// refused with its file, line and field; and epochs drawn as shuffled permutations of the examples.

import AttnFormats
import Foundation
import Testing

@testable import AttnTrain

private func write(_ text: String, _ name: String) throws -> String {
  let directory = NSTemporaryDirectory() + "attn-labelled-\(UUID().uuidString.prefix(8))"
  try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
  let path = directory + "/" + name
  try Data(text.utf8).write(to: URL(fileURLWithPath: path))
  return path
}

/// A classification config over `train` (and `dev`) with the given format and extra task keys.
private func config(
  train: String, dev: String? = nil, format: String, textField: String = "text", task: String = "", blockSize: Int = 8,
  tokenizer: String = #""char""#, pooling: String? = nil
) throws -> Config {
  let json = """
    {"model": {"n_layer": 1, "n_head": 1, "n_embd": 8, "block_size": \(blockSize)},
     "data": {"train_path": "\(train)", "dev_path": \(dev.map { "\"\($0)\"" } ?? "null"), "format": "\(format)",
              "text_field": "\(textField)", "tokenizer": \(tokenizer)},
     "task": {"kind": "classification"\(task)\(pooling.map { #", "pooling": ""# + $0 + #"""# } ?? "")}}
    """
  return try Config.parse(json: Data(json.utf8), sourcePath: NSTemporaryDirectory() + "labelled.json")
}

@Suite struct ClassificationDataTests {
  @Test func tsvAndCSVFieldsAreReadWithQuotesAsRFC4180Has() throws {
    let rows = try DelimitedRows("a,b,c\n\"x, y\",\"say \"\"hi\"\"\",1\nplain \"quote\" inside,\"two\nlines\",2\n", separator: ",", path: "t.csv")
    #expect(rows.map(\.fields) == [["a", "b", "c"], ["x, y", "say \"hi\"", "1"], ["plain \"quote\" inside", "two\nlines", "2"]])
    #expect(rows.map(\.line) == [1, 2, 3])
    let tsv = try DelimitedRows("sentence\tlabel\nit 's `` good '' \t1\n", separator: "\t", path: "t.tsv")
    #expect(tsv.map(\.fields) == [["sentence", "label"], ["it 's `` good '' ", "1"]])
    #expect(throws: InputError.self) { _ = try DelimitedRows("a\n\"never closed\n", separator: ",", path: "t.csv") }
  }

  @Test func labelsMapToSortedIdsAndExamplesTruncateAtTheChosenEnd() throws {
    let train = try write("text\tlabel\nabcdefghij\t10\nxyz\t2\nbb\t2\n", "train.tsv")
    let dev = try write("text\tlabel\naz\t10\n", "dev.tsv")
    let data = try ClassificationData.load(try config(train: train, dev: dev, format: "tsv", blockSize: 4))
    #expect(data.labels == ["2", "10"])  // integers sort as numbers
    #expect(data.train.count == 3)
    #expect(data.train.label(0) == 1 && data.train.label(1) == 0)
    #expect(data.train.length(0) == 4 && data.train.length(1) == 3)
    var tokens = [Int32](repeating: -1, count: 4)
    var length: Int32 = 0
    var label: Int32 = 0
    data.train.copy(0, toRow: 0, tokens: &tokens, lengths: &length, labels: &label)
    #expect(data.tokenizer.decode(tokens) == "abcd")
    let fromStart = try ClassificationData.load(try config(train: train, dev: dev, format: "tsv", task: #", "truncate": "start""#, blockSize: 4))
    fromStart.train.copy(0, toRow: 0, tokens: &tokens, lengths: &length, labels: &label)
    #expect(fromStart.tokenizer.decode(tokens) == "ghij")
  }

  @Test func jsonlTakesStringAndIntegerLabelsAndHoldsOutTheEnd() throws {
    let lines = (0..<10).map { #"{"text": "example \#($0)", "label": \#($0 % 2 == 0 ? "\"even\"" : "\"odd\"")}"# }
    let train = try write(lines.joined(separator: "\n") + "\n", "train.jsonl")
    let data = try ClassificationData.load(try config(train: train, format: "jsonl"))
    #expect(data.labels == ["even", "odd"])
    #expect(data.train.count == 9 && data.dev.count == 1)  // train_fraction 0.9 of 10 examples
    let integers = try write(#"{"text": "a", "label": 3}"# + "\n" + #"{"text": "b", "label": 1}"# + "\n", "ints.jsonl")
    let dev = try write(#"{"text": "c", "label": 3}"# + "\n", "dev.jsonl")
    #expect(try ClassificationData.load(try config(train: integers, dev: dev, format: "jsonl")).labels == ["1", "3"])
  }

  struct Bad: Sendable, CustomTestStringConvertible {
    let label: String
    let train: String
    let dev: String
    let format: String
    var task: String = ""
    var pooling: String? = nil
    let fragments: [String]
    var testDescription: String { label }
  }

  static let bad: [Bad] = [
    Bad(label: "a dev label outside the list", train: "text\tlabel\na\tpos\nb\tneg\n", dev: "text\tlabel\nc\tneutral\n", format: "tsv",
        fragments: ["line 2", "\"neutral\" is not among the labels (neg, pos)"]),
    Bad(label: "a missing text column", train: "words\tlabel\na\tpos\n", dev: "text\tlabel\nc\tpos\n", format: "tsv",
        fragments: ["line 1", "no column \"text\"", "\"words\""]),
    Bad(label: "a missing label column", train: "text\tclass\na\tpos\n", dev: "text\tlabel\nc\tpos\n", format: "tsv",
        fragments: ["task.label_field", "no column \"label\""]),
    Bad(label: "a ragged row", train: "text,label\na,pos\nb,neg,extra\n", dev: "text,label\nc,pos\n", format: "csv",
        fragments: ["line 3", "3 fields where the header has 2"]),
    Bad(label: "an empty dev file", train: "text\tlabel\na\tpos\nb\tneg\n", dev: "text\tlabel\n", format: "tsv",
        fragments: ["data.dev_path", "holds no examples"]),
    Bad(label: "num_classes disagreeing", train: "text\tlabel\na\tpos\nb\tneg\n", dev: "text\tlabel\nc\tpos\n", format: "tsv",
        task: #", "num_classes": 3"#, fragments: ["task.num_classes", "is 3, but the labels are 2"]),
    Bad(label: "a JSONL line without the label", train: #"{"text": "a", "label": "x"}"# + "\n" + #"{"text": "b"}"# + "\n",
        dev: #"{"text": "c", "label": "x"}"# + "\n", format: "jsonl", fragments: ["line 2", "no \"label\" label"]),
    Bad(label: "first pooling without [CLS]", train: "text\tlabel\na\tpos\nb\tneg\n", dev: "text\tlabel\nc\tpos\n", format: "tsv",
        pooling: "first", fragments: ["task.pooling", "[CLS]"]),
  ]

  @Test(arguments: bad) func malformedLabelledDataIsRefusedWithItsPlace(_ bad: Bad) throws {
    let train = try write(bad.train, "train.\(bad.format)")
    let dev = try write(bad.dev, "dev.\(bad.format)")
    let error = try #require(throws: InputError.self) {
      _ = try ClassificationData.load(try config(train: train, dev: dev, format: bad.format, task: bad.task, pooling: bad.pooling))
    }
    for fragment in bad.fragments { #expect(error.description.contains(fragment), "\(error)") }
  }

  @Test func aSingleLabelTrainingSetIsWarnedAbout() throws {
    let train = try write("text\tlabel\na\tpos\nb\tpos\n", "train.tsv")
    let dev = try write("text\tlabel\nc\tneg\n", "dev.tsv")
    // With the labels listed, one label in training is legal but worth a warning; the warning goes
    // through the run's log (rank 0's stderr), so here it is only seen not to stop the load.
    let data = try ClassificationData.load(try config(train: train, dev: dev, format: "tsv", task: #", "labels": ["neg", "pos"]"#), log: RunLog(isSpeaker: false))
    #expect(data.labels == ["neg", "pos"])
    #expect(throws: InputError.self) { _ = try ClassificationData.load(try config(train: train, dev: dev, format: "tsv")) }
  }

  @Test func everyEpochVisitsEveryExampleOnceInItsOwnOrder() {
    let sampler = EpochSampler(seed: 7, count: 50)
    let epochs = (0..<3).map { e in (0..<50).map { sampler.example(globalSample: e * 50 + $0) } }
    for order in epochs { #expect(order.sorted() == Array(0..<50)) }
    #expect(epochs[0] != epochs[1] && epochs[1] != epochs[2])
    // A pure function of (seed, sample): another sampler, asked out of order, agrees.
    let again = EpochSampler(seed: 7, count: 50)
    #expect(again.example(globalSample: 120) == epochs[2][20])
    #expect(again.example(globalSample: 3) == epochs[0][3])
    let otherSeed = EpochSampler(seed: 8, count: 50)
    #expect((0..<50).map { otherSeed.example(globalSample: $0) } != epochs[0])
  }
}
