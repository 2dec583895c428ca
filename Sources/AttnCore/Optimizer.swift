// The optimizers, each one pass over the flat parameter buffer, with PyTorch's update rules:
// SGD (momentum, Nesterov), Adam and RMSprop with L2 weight decay added to the gradient, and AdamW
// with decoupled decay. Weight decay applies to weight matrices, to embeddings when configured,
// and never to biases or LayerNorm parameters. Gradient clipping's scaling happens in the same pass
// (see gradientClipping at the end).

#if canImport(Glibc)
  import Glibc
#else
  import Darwin
#endif

public enum OptimizerKind: String, Sendable, CaseIterable {
  case sgd, adam, adamw, rmsprop
}

public struct OptimizerSettings: Equatable, Sendable {
  public var kind: OptimizerKind
  public var weightDecay: Float
  public var beta1: Float
  public var beta2: Float
  public var eps: Float
  public var momentum: Float
  public var nesterov: Bool
  public var alpha: Float
  public var decayEmbeddings: Bool

  public init(
    kind: OptimizerKind, weightDecay: Float = 0, beta1: Float = 0.9, beta2: Float = 0.999,
    eps: Float = 1e-8, momentum: Float = 0, nesterov: Bool = false, alpha: Float = 0.99,
    decayEmbeddings: Bool = true
  ) {
    self.kind = kind
    self.weightDecay = weightDecay
    self.beta1 = beta1
    self.beta2 = beta2
    self.eps = eps
    self.momentum = momentum
    self.nesterov = nesterov
    self.alpha = alpha
    self.decayEmbeddings = decayEmbeddings
  }
}

public final class Optimizer {
  public let settings: OptimizerSettings
  /// Updates taken so far; Adam's bias correction uses it, so it is checkpointed.
  public var stepCount: Int = 0
  /// Named state buffers (momentum / first moment, second moment), for checkpoints.
  public let state: [(name: String, buffer: FloatBuffer)]
  private let segments: [(range: Range<Int>, decay: Bool)]
  private let pool: WorkerPool

  public init(settings: OptimizerSettings, layout: ParameterLayout, pool: WorkerPool = .shared) {
    self.settings = settings
    self.pool = pool
    state = Self.stateNames(settings).map { ($0, FloatBuffer(count: layout.count)) }
    // Adjacent tensors with the same decay rule merge into one range: fewer, longer loops.
    var segments: [(range: Range<Int>, decay: Bool)] = []
    for tensor in layout.tensors {
      let decay =
        switch tensor.kind {
        case .matrix: true
        case .embedding: settings.decayEmbeddings
        case .vector: false
        }
      if let last = segments.last, last.decay == decay, last.range.upperBound == tensor.offset {
        segments[segments.count - 1].range = last.range.lowerBound..<tensor.range.upperBound
      } else {
        segments.append((tensor.range, decay))
      }
    }
    self.segments = segments
  }

  /// The state buffers a kind keeps, each as large as the parameters.
  public static func stateNames(_ settings: OptimizerSettings) -> [String] {
    switch settings.kind {
    case .sgd: return settings.momentum > 0 ? ["momentum"] : []
    case .adam, .adamw: return ["exp_avg", "exp_avg_sq"]
    case .rmsprop: return ["square_avg"] + (settings.momentum > 0 ? ["momentum"] : [])
    }
  }

  public func buffer(named name: String) -> FloatBuffer? { state.first { $0.name == name }?.buffer }

  /// One update of `parameters` from `gradients * gradientScale` at the given learning rate (the
  /// gradient buffer itself is left as it is). gradientScale is what gradientClipping returns.
  /// With `ranges`, only those elements (and their state) are updated: a rank's shares, when each
  /// rank updates its part and the parameters are gathered afterwards.
  public func step(
    parameters: FloatBuffer, gradients: FloatBuffer, learningRate: Float, gradientScale: Float = 1,
    over ranges: UnsafeBufferPointer<Range<Int>>? = nil
  ) {
    stepCount += 1
    let s = settings
    let p = parameters.pointer
    let g = gradients.pointer
    let first = state.count > 0 ? state[0].buffer.pointer : nil
    let second = state.count > 1 ? state[1].buffer.pointer : nil
    let t = Double(stepCount)
    let lr = learningRate
    let stepSize = Float(Double(lr) / (1 - pow(Double(s.beta1), t)))
    let inverseCorrection2 = Float(1 / (1 - pow(Double(s.beta2), t)).squareRoot())
    // Elementwise updates: splitting a segment among threads or ranges changes no result.
    func update(_ range: Range<Int>, decay: Bool) {
      let update = Update(
        settings: s, p: p + range.lowerBound, g: g + range.lowerBound,
        first: first.map { $0 + range.lowerBound }, second: second.map { $0 + range.lowerBound },
        lr: lr, wd: decay ? s.weightDecay : 0, stepSize: stepSize, inverseCorrection2: inverseCorrection2,
        gradientScale: gradientScale)
      pool.parallelFor(range.count, granularity: 4096, update)
    }
    for (segment, decay) in segments {
      guard let ranges else {
        update(segment, decay: decay)
        continue
      }
      for range in ranges {
        let part = range.clamped(to: segment)
        if !part.isEmpty { update(part, decay: decay) }
      }
    }
  }
}

/// One segment's update, as a job for the worker pool.
private struct Update: ParallelKernel {
  let settings: OptimizerSettings
  let p: UnsafeMutablePointer<Float>
  let g: UnsafePointer<Float>
  let first, second: UnsafeMutablePointer<Float>?
  let lr, wd, stepSize, inverseCorrection2, gradientScale: Float

  func run(_ part: Range<Int>, thread: Int) {
    let s = settings
    let lower = part.lowerBound
    let n = part.count
    let (pp, gg) = (p + lower, g + lower)
    switch s.kind {
    case .sgd:
      sgdUpdate(
        pp, gg, first.map { $0 + lower }, n, scale: gradientScale, lr: lr, wd: wd, momentum: s.momentum,
        nesterov: s.nesterov)
    case .adam, .adamw:
      adamUpdate(
        pp, gg, first! + lower, second! + lower, n, scale: gradientScale, lr: lr, stepSize: stepSize,
        inverseCorrection2: inverseCorrection2, beta1: s.beta1, beta2: s.beta2, eps: s.eps,
        decoupledDecay: s.kind == .adamw ? wd : 0, l2Decay: s.kind == .adam ? wd : 0)
    case .rmsprop:
      rmspropUpdate(
        pp, gg, first! + lower, second.map { $0 + lower }, n, scale: gradientScale, lr: lr, wd: wd, alpha: s.alpha,
        eps: s.eps, momentum: s.momentum)
    }
  }
}

// MARK: - Update rules (torch.optim semantics)

// Eight lanes at a time. Swift's squareRoot keeps errno semantics, which compiled these loops (and
// SIMD8.squareRoot too) to a libm call per element; with -fno-math-errno (Package.swift) they become
// vsqrtps (AdamW was 4% of a shakespeare-char step). Each lane does the scalar formula's operations
// in the same order, so results are the same as the scalar loop's.

@inline(__always)
private func sgdUpdate(
  _ p: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>, _ buf: UnsafeMutablePointer<Float>?,
  _ n: Int, scale: Float, lr: Float, wd: Float, momentum: Float, nesterov: Bool
) {
  guard let buf else {
    forEachChunk(n) { i, k in
      let pi = load8(p + i, k)
      store8(pi - lr * (load8(g + i, k) * scale + wd * pi), p + i, k)
    }
    return
  }
  // torch starts the buffer at the first gradient; momentum * 0 + g is the same thing.
  forEachChunk(n) { i, k in
    let pi = load8(p + i, k)
    let d = load8(g + i, k) * scale + wd * pi
    let b = momentum * load8(buf + i, k) + d
    store8(b, buf + i, k)
    store8(pi - lr * (nesterov ? d + momentum * b : b), p + i, k)
  }
}

@inline(__always)
private func adamUpdate(
  _ p: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>, _ m: UnsafeMutablePointer<Float>,
  _ v: UnsafeMutablePointer<Float>, _ n: Int, scale: Float, lr: Float, stepSize: Float, inverseCorrection2: Float,
  beta1: Float, beta2: Float, eps: Float, decoupledDecay: Float, l2Decay: Float
) {
  let shrink = 1 - lr * decoupledDecay
  forEachChunk(n) { i, k in
    let pi = load8(p + i, k)
    let d = load8(g + i, k) * scale + l2Decay * pi
    let mi = beta1 * load8(m + i, k) + (1 - beta1) * d
    let vi = beta2 * load8(v + i, k) + (1 - beta2) * d * d
    store8(mi, m + i, k)
    store8(vi, v + i, k)
    let denominator = vi.squareRoot() * inverseCorrection2 + eps
    store8(pi * shrink - stepSize * mi / denominator, p + i, k)
  }
}

@inline(__always)
private func rmspropUpdate(
  _ p: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>, _ sq: UnsafeMutablePointer<Float>,
  _ buf: UnsafeMutablePointer<Float>?, _ n: Int, scale: Float, lr: Float, wd: Float, alpha: Float, eps: Float,
  momentum: Float
) {
  forEachChunk(n) { i, k in
    let pi = load8(p + i, k)
    let d = load8(g + i, k) * scale + wd * pi
    let s = alpha * load8(sq + i, k) + (1 - alpha) * d * d
    store8(s, sq + i, k)
    let step = d / (s.squareRoot() + eps)
    if let buf {
      let b = momentum * load8(buf + i, k) + step
      store8(b, buf + i, k)
      store8(pi - lr * b, p + i, k)
    } else {
      store8(pi - lr * step, p + i, k)
    }
  }
}

// MARK: - Clipping

/// The global L2 norm of the gradients, and the factor torch.nn.utils.clip_grad_norm_ scales them by:
/// min(1, maxNorm / (norm + 1e-6)), or 1 when maxNorm is 0 (no clipping). The scaling itself is
/// done by Optimizer.step(gradientScale:), in its one pass over the buffers; torch multiplies by the
/// factor even when it is 1, so the result is the same either way.
public func gradientClipping(_ gradients: FloatBuffer, maxNorm: Float) -> (norm: Float, scale: Float) {
  gradientClipping(sumOfSquares: sumOfSquares(gradients.pointer, gradients.count), maxNorm: maxNorm)
}

/// The same from the gradients' sum of squares, when ranks add up their shares of it.
public func gradientClipping(sumOfSquares: Double, maxNorm: Float) -> (norm: Float, scale: Float) {
  let norm = Float(sumOfSquares.squareRoot())
  guard maxNorm > 0 else { return (norm, 1) }
  return (norm, min(1, maxNorm / (norm + 1e-6)))
}
