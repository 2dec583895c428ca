// attn-bench: training throughput of attn-train's model on this machine, per config and thread count,
// next to the sgemm rate OpenBLAS reaches here in the same run. Not a test: it prints a table.
//   swift run -c release attn-bench [--seconds S] [--threads 1,2] [--profile] CONFIG...
// Each measurement runs one warm-up step, then steps until S seconds (default 5) have passed, at
// least 2.
// A step is what the trainer does per optimizer step on one rank: forward, backward, clip, update.
// FLOPs per token follow nanoGPT's estimate 6N + 12 L C T (N without position embeddings).

import AttnCore
import AttnDist
import AttnFormats
import AttnTrain
import CBLAS
import Foundation

struct Options {
  var seconds = 5.0
  var warmup = 1
  var threads = [1, ProcessInfo.processInfo.activeProcessorCount]
  var profile = false
  /// Time the allreduce of each config's gradient buffer instead of training (run under mpirun).
  var allreduce = false
  var configs: [String] = []
}

func parseOptions() -> Options {
  var options = Options()
  var arguments = CommandLine.arguments.dropFirst()
  func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("attn-bench: \(message)\nusage: attn-bench [--seconds S] [--warmup N] [--threads 1,2] [--profile] CONFIG...\n       mpirun -np N attn-bench --allreduce CONFIG...\n".utf8))
    exit(2)
  }
  func number(_ text: String?, _ what: String) -> Int {
    guard let text, let value = Int(text) else { fail("\(what) needs a whole number") }
    return value
  }
  while let argument = arguments.popFirst() {
    switch argument {
    case "--seconds": options.seconds = Double(number(arguments.popFirst(), "--seconds"))
    case "--warmup": options.warmup = number(arguments.popFirst(), "--warmup")
    case "--threads":
      options.threads = (arguments.popFirst() ?? "").split(separator: ",").map { number(String($0), "--threads") }
    case "--profile": options.profile = true
    case "--allreduce": options.allreduce = true
    case "--help", "-h": fail("training tokens/s per config and thread count")
    default:
      if argument.hasPrefix("--") { fail("unknown option \(argument)") }
      options.configs.append(argument)
    }
  }
  if options.configs.isEmpty { fail("give at least one config") }
  if options.seconds <= 0 || options.threads.isEmpty || options.threads.contains(where: { $0 < 1 }) { fail("bad --seconds or --threads") }
  return options
}

/// GFLOP/s of a square sgemm of size n (best of a few runs).
func sgemmRate(_ n: Int) -> Double {
  let a = FloatBuffer(count: n * n)
  let b = FloatBuffer(count: n * n)
  let c = FloatBuffer(count: n * n)
  for i in 0..<(n * n) {
    a.pointer[i] = Float(i % 7) * 0.1
    b.pointer[i] = Float(i % 5) * 0.1
  }
  var best = Double.infinity
  for _ in 0..<5 {
    let start = Profiler.now()
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(n), Int32(n), 1, a.pointer, Int32(n), b.pointer, Int32(n), 0, c.pointer, Int32(n))
    best = min(best, Profiler.now() - start)
  }
  return 2 * Double(n * n * n) / best / 1e9
}

struct Measurement {
  let tokensPerSecond: Double
  let gflops: Double
  let millisecondsPerStep: Double
  let steps: Int
}

func measure(_ config: Config, data: TextData, threads: Int, options: Options) -> Measurement {
  ComputeThreads.set(threads)
  let shape = config.modelShape(vocabSize: data.tokenizer.vocabSize)
  let B = config.training.batchSize
  let T = shape.blockSize
  let model = GPT(shape: shape, maxBatch: B)
  model.initializeParameters(seed: config.training.seed)
  let optimizer = Optimizer(settings: config.optimizer.settings, layout: model.layout)
  let sampler = BatchSampler(seed: config.training.seed, sequenceLength: T, tokenCount: data.train.count)
  let tokens = UnsafeMutablePointer<Int32>.allocate(capacity: B * T)
  let targets = UnsafeMutablePointer<Int32>.allocate(capacity: B * T)
  defer {
    tokens.deallocate()
    targets.deallocate()
  }
  let dropoutKey = RandomKey(seed: config.training.seed, purpose: .dropout)
  func step(_ t: Int) {
    try! sampler.fill(
      tokens: tokens, targets: targets, from: data.train, vocabularySize: data.tokenizer.vocabSize, step: t, microStep: 0,
      firstSample: 0, count: B)
    let context = DropoutContext(probability: shape.dropout, stepKey: dropoutKey.then(t), firstGlobalSample: 0)
    model.forward(tokens: tokens, targets: targets, B: B, T: T, dropout: context)
    // As the trainer's first micro-step: the gradients are written, not zeroed and then added to.
    model.backward(
      tokens: tokens, targets: targets, B: B, T: T, lossScale: 1 / Float(B * T), dropout: context, accumulate: false)
    let clipping = Profiler.measure(.clipping, backward: true) { gradientClipping(model.gradients, maxNorm: 1) }
    Profiler.measure(.optimizer, backward: true) {
      optimizer.step(
        parameters: model.parameters, gradients: model.gradients, learningRate: 1e-4, gradientScale: clipping.scale)
    }
  }
  for t in 0..<options.warmup { step(t) }
  Profiler.reset()
  Profiler.enabled = options.profile
  let start = Profiler.now()
  var steps = 0
  while steps < 2 || Profiler.now() - start < options.seconds {
    step(options.warmup + steps)
    steps += 1
  }
  let seconds = Profiler.now() - start
  Profiler.enabled = false
  let positionParameters = model.layout["wpe"]?.count ?? 0
  let n = Double(model.parameters.count - positionParameters)
  let flopsPerToken = 6 * n + 12 * Double(shape.layers * shape.channels * T)
  let tokensPerSecond = Double(steps * B * T) / seconds
  return Measurement(
    tokensPerSecond: tokensPerSecond, gflops: tokensPerSecond * flopsPerToken / 1e9,
    millisecondsPerStep: seconds / Double(steps) * 1000, steps: steps)
}

/// Best and median milliseconds of an in-place allreduce of `count` floats through the
/// Communicator (the C shim), whole or in buckets of `bucket` floats, after one warm-up.
func allreduceTimes(_ communicator: Communicator, count: Int, bucket: Int, repeats: Int = 20) throws -> (Double, Double) {
  let buffer = FloatBuffer(count: count)
  for i in 0..<count { buffer.pointer[i] = 1e-3 * Float(i % 1000) }
  func once() throws {
    var lower = 0
    while lower < count {
      let upper = min(count, lower + bucket)
      try communicator.allreduceSum(UnsafeMutableBufferPointer(start: buffer.pointer + lower, count: upper - lower))
      lower = upper
    }
  }
  try once()
  var times: [Double] = []
  for _ in 0..<repeats {
    try communicator.barrier()
    let start = Profiler.now()
    try once()
    times.append((Profiler.now() - start) * 1000)
  }
  times.sort()
  return (times[0], times[repeats / 2])
}

/// `attn-bench --tokenize TOKENIZER TEXT [--threads 1,2]`: BPE encoding MB/s of TEXT (best of 3),
/// `attn-bench --learn-bpe N TEXT`: seconds to learn N ids from TEXT, and `attn-bench
/// --export-tokenizer TOKENIZER OUT`: TOKENIZER as a Hugging Face tokenizer.json. For
/// dev/bench/tokenizers.py.
if CommandLine.arguments.count >= 4, ["--tokenize", "--learn-bpe", "--export-tokenizer"].contains(CommandLine.arguments[1]) {
  let arguments = CommandLine.arguments
  do {
    if arguments[1] == "--export-tokenizer" {
      let bpe = try BytePairEncoding.load(path: arguments[2])
      try Data(bpe.huggingFaceJSON.description.utf8).write(to: URL(fileURLWithPath: arguments[3]))
      exit(0)
    }
    let text = try Data(contentsOf: URL(fileURLWithPath: arguments[3]))
    if arguments[1] == "--learn-bpe" {
      let start = Profiler.now()
      let bpe = try BytePairEncoding.train(on: [String(decoding: text, as: UTF8.self)], vocabularySize: Int(arguments[2])!)
      print(String(format: "learn %d %.3f", bpe.vocabSize, Profiler.now() - start))
      exit(0)
    }
    let bpe = try BytePairEncoding.load(path: arguments[2])
    let threads = arguments.count > 5 && arguments[4] == "--threads" ? arguments[5].split(separator: ",").compactMap { Int($0) } : [1]
    for count in threads {
      var best = Double.infinity
      var tokens = 0
      for _ in 0..<3 {
        let start = Profiler.now()
        tokens = text.withUnsafeBytes { bpe.encode($0.bindMemory(to: UInt8.self), threads: count).count }
        best = min(best, Profiler.now() - start)
      }
      print(String(format: "encode %d %d %d %.3f %.1f", count, text.count, tokens, best, Double(text.count) / best / 1e6))
    }
  } catch {
    FileHandle.standardError.write(Data("attn-bench: \(error)\n".utf8))
    exit(1)
  }
  exit(0)
}

/// `attn-bench --data-loading CONFIG`: a training step's batch read from prepared, memory-mapped
/// shards (prepared first into a temporary directory) against the step itself, on one thread.
if CommandLine.arguments.count >= 3, CommandLine.arguments[1] == "--data-loading" {
  do {
    ComputeThreads.set(1)
    let config = try Config.load(path: CommandLine.arguments[2])
    let directory = NSTemporaryDirectory() + "attn-bench-data-\(getpid())"
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let data = try PreparedData.open(
      config, directory: directory + "/data", tokenizer: nil, learnedTokenizerFile: directory + "/tokenizer.json",
      communicator: SingleProcessCommunicator(), log: RunLog(isSpeaker: false))
    let B = config.training.batchSize
    let T = config.model.blockSize
    let sampler = BatchSampler(seed: config.training.seed, sequenceLength: T, tokenCount: data.train.count)
    let tokens = UnsafeMutablePointer<Int32>.allocate(capacity: B * T)
    let targets = UnsafeMutablePointer<Int32>.allocate(capacity: B * T)
    var best = Double.infinity
    for round in 0..<5 {
      let start = Profiler.now()
      for step in 0..<1000 {
        try sampler.fill(
          tokens: tokens, targets: targets, from: data.train, vocabularySize: data.tokenizer.vocabSize,
          step: round * 1000 + step, microStep: 0, firstSample: 0, count: B)
      }
      best = min(best, (Profiler.now() - start) / 1000)
    }
    let step = measure(config, data: data, threads: 1, options: Options(seconds: 3, warmup: 2, threads: [1], profile: false, allreduce: false, configs: []))
    print("| config | batch read from shards, µs | training step, ms | share of the step |")
    print("|---|--:|--:|--:|")
    print(String(format: "| %@ | %.1f | %.2f | %.2f%% |", URL(fileURLWithPath: CommandLine.arguments[2]).lastPathComponent, best * 1e6, step.millisecondsPerStep, 100 * best * 1000 / step.millisecondsPerStep))
  } catch {
    FileHandle.standardError.write(Data("attn-bench: \(error)\n".utf8))
    exit(1)
  }
  exit(0)
}

let options = parseOptions()
if options.allreduce {
  // Lines "swift COUNT BEST MEDIAN" and "swift-buckets COUNT BEST MEDIAN" (ms), read by
  // dev/bench/allreduce/run.sh next to the C program's "c COUNT BEST MEDIAN".
  do {
    let communicator = try makeCommunicator(environment: ProcessInfo.processInfo.environment, threadSupport: .serialized)
    for path in options.configs {
      let config = try Config.load(path: path)
      let data = try TextData.load(config)
      let count = ParameterLayout(config.modelShape(vocabSize: data.tokenizer.vocabSize)).count
      let whole = try allreduceTimes(communicator, count: count, bucket: count)
      let bucket = Int(config.training.gradientBucketMB * 1_048_576 / 4)
      let buckets = try allreduceTimes(communicator, count: count, bucket: bucket)
      if communicator.rank == 0 {
        print(String(format: "swift %d %.3f %.3f", count, whole.0, whole.1))
        print(String(format: "swift-buckets %d %.3f %.3f", count, buckets.0, buckets.1))
      }
    }
    try? communicator.finalize()
  } catch {
    FileHandle.standardError.write(Data("attn-bench: \(error)\n".utf8))
    exit(1)
  }
  exit(0)
}
var rows: [String] = []
var sgemm: [Int: Double] = [:]
for threads in options.threads {
  // OpenBLAS's own threading, as the reference rate (attn-train splits products among its threads).
  openblas_set_num_threads(Int32(threads))
  sgemm[threads] = sgemmRate(1024)
}
print("sgemm 1024^3: " + options.threads.map { String(format: "%.1f GFLOP/s on %d thread(s)", sgemm[$0]!, $0) }.joined(separator: ", "))
print("| config | threads | tokens/s | ms/step | GFLOP/s | of sgemm |")
print("|---|---:|---:|---:|---:|---:|")
for path in options.configs {
  do {
    let config = try Config.load(path: path)
    let data = try TextData.load(config)
    for threads in options.threads {
      let m = measure(config, data: data, threads: threads, options: options)
      let name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
      print(String(format: "| %@ | %d | %.0f | %.1f | %.1f | %.0f%% |", name, threads, m.tokensPerSecond, m.millisecondsPerStep, m.gflops, 100 * m.gflops / sgemm[threads]!))
      if options.profile {
        let total = Profiler.report().reduce(0) { $0 + $1.forward + $1.backward }
        for entry in Profiler.report() {
          print(String(format: "|   %@ | | fwd %.1f ms | bwd %.1f ms | %.0f%% | |", "\(entry.section)", entry.forward * 1000 / Double(m.steps), entry.backward * 1000 / Double(m.steps), 100 * (entry.forward + entry.backward) / total))
        }
      }
    }
  } catch {
    FileHandle.standardError.write(Data("attn-bench: \(error)\n".utf8))
    exit(1)
  }
}
