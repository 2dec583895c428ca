// BPE tokenizers through the binary, as a user meets them: a learned tokenizer trains, is kept in the
// run directory and reused, eval reports bits per byte, a stopped run resumes with the checkpoint's
// tokenizer, and `sample` prints valid UTF-8; GPT-2's tokenizer trains from its ranks file.

import AttnFormats
import AttnTrain
import Foundation
import Testing

@Suite struct TokenizerEndToEndTests {
  @Test func aLearnedBPETrainsEvaluatesResumesAndSamples() throws {
    let dir = try Harness.temporaryDirectory("bpe-learned")
    let run = dir.appendingPathComponent("run").path
    func config(steps: Int) throws -> String {
      try Harness.writeConfig(in: dir, name: "bpe-\(steps).json", [
        "training": ["max_steps": steps, "eval_interval": 0, "checkpoint_interval": 0],
        "data": ["tokenizer": ["kind": "bpe", "vocab_size": 400]],
      ])
    }
    let first = try Harness.attnTrain([try config(steps: 6)])
    #expect(first.status == 0, "\(first.output)")
    #expect(first.stdout.contains("tokenizer: learned 400 ids from the training text"), "\(first.output)")
    #expect(first.stdout.contains("vocabulary 400,"), "\(first.output)")
    let tokenizerFile = run + "/tokenizer.json"
    let learned = try Data(contentsOf: URL(fileURLWithPath: tokenizerFile))

    // A resumed run takes the checkpoint's tokenizer and leaves the learned file as it was.
    let resumed = try Harness.attnTrain([try config(steps: 9)])
    #expect(resumed.status == 0, "\(resumed.output)")
    #expect(resumed.stdout.contains("resuming from"), "\(resumed.output)")
    #expect(resumed.stdout.contains("step 9/9"), "\(resumed.output)")
    #expect(try Data(contentsOf: URL(fileURLWithPath: tokenizerFile)) == learned)

    let eval = try Harness.attnTrain(["eval", try config(steps: 9), "--json"])
    #expect(eval.status == 0, "\(eval.output)")
    let figures = try JSONObject(JSONValue.parse(Data(eval.stdout.utf8)))
    let (loss, tokens, bytes) = (try figures.double("dev_loss"), try figures.int("tokens"), try figures.int("bytes"))
    // A BPE token stands for more than one byte of Shakespeare, so bits per byte are below bits per token.
    #expect(bytes > tokens)
    #expect(abs(try figures.double("bits_per_byte") - loss * Double(tokens) / (Double(bytes) * log(2.0))) <= 1e-12)

    // Greedy, so no untrained byte token is drawn: every character printed is a whole one.
    let sample = try Harness.attnTrain(["sample", try config(steps: 9), "--prompt", "ROMEO: ½ 🙂", "--tokens", "60", "--temperature", "0"])
    #expect(sample.status == 0, "\(sample.output)")
    #expect(!sample.stdout.contains("\u{FFFD}"), "sample printed a broken character: \(sample.stdout)")
    #expect(sample.stdout.hasPrefix("ROMEO: ½ 🙂"), "\(sample.stdout)")
  }

  @Test func gpt2sTokenizerTrainsFromItsRanksFile() throws {
    let dir = try Harness.temporaryDirectory("bpe-gpt2")
    let config = try Harness.writeConfig(in: dir, [
      "model": ["vocab_size": 50304],
      "schedule": ["warmup_steps": 1],
      "training": ["max_steps": 2, "batch_size": 4, "eval_interval": 0, "checkpoint_interval": 0],
      "data": ["tokenizer": ["kind": "bpe", "path": Harness.repository.appendingPathComponent("data/tokenizers/gpt2.tiktoken").path]],
    ])
    let result = try Harness.attnTrain([config])
    #expect(result.status == 0, "\(result.output)")
    #expect(result.stdout.contains("vocabulary 50257, train 301966 tokens, dev 36059 tokens"), "\(result.output)")
  }
}
