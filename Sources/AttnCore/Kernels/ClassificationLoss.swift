// A classifier's cross-entropy, with the two knobs small labelled sets want: label smoothing, which
// trains toward q = (1 - e) * onehot(y) + e / K instead of onehot(y) (so the logits stop growing
// once an example is right), and class weights, which scale each example's loss by its label's
// weight (so a rare class counts for more). B rows of K logits; K is small, so plain loops.
//
// The weighted loss is the mean over examples of weight(y) * loss, not PyTorch's weighted mean
// (which divides by the batch's summed weights): the step's scale then does not depend on which
// labels a batch happens to draw, and N ranks' shares add up to one process's batch exactly.

#if canImport(Glibc)
  import Glibc
#else
  import Darwin
#endif

public struct ClassificationLoss: Equatable, Sendable {
  /// e in [0, 1): the share of each target spread evenly over the classes.
  public var labelSmoothing: Float
  /// One weight per class, or nil for all 1.
  public var classWeights: [Float]?

  public init(labelSmoothing: Float = 0, classWeights: [Float]? = nil) {
    self.labelSmoothing = labelSmoothing
    self.classWeights = classWeights
  }

  /// Plain cross-entropy: what evaluation reports.
  public static let plain = ClassificationLoss()
}

/// losses[B] = w(y) * (lse - (1 - e) * z[y] - (e / K) * sum(z));  lse[B] is written.
/// With e = 0 and no weights, exactly lse - z[y].
func classificationLossForward(
  _ losses: UnsafeMutablePointer<Float>, _ lse: UnsafeMutablePointer<Float>, _ logits: UnsafePointer<Float>,
  _ labels: UnsafePointer<Int32>, _ loss: ClassificationLoss, _ B: Int, _ K: Int
) {
  let e = loss.labelSmoothing
  for n in 0..<B {
    let z = logits + n * K
    var maxValue = -Float.infinity
    var sum: Float = 0
    for j in 0..<K {
      maxValue = max(maxValue, z[j])
      sum += z[j]
    }
    var exps: Float = 0
    for j in 0..<K { exps += expf(z[j] - maxValue) }
    let logSumExp = maxValue + logf(exps)
    lse[n] = logSumExp
    let y = Int(labels[n])
    let smoothed = e == 0 ? logSumExp - z[y] : logSumExp - (1 - e) * z[y] - (e / Float(K)) * sum
    losses[n] = (loss.classWeights?[y] ?? 1) * smoothed
  }
}

/// logits[B, K] becomes dlogits = w(y) * (softmax - q) * scale  (=, in place).
func classificationLossBackwardInPlace(
  _ logits: UnsafeMutablePointer<Float>, _ lse: UnsafePointer<Float>, _ labels: UnsafePointer<Int32>,
  _ loss: ClassificationLoss, scale: Float, _ B: Int, _ K: Int
) {
  let e = loss.labelSmoothing
  for n in 0..<B {
    let z = logits + n * K
    let y = Int(labels[n])
    let s = (loss.classWeights?[y] ?? 1) * scale
    for j in 0..<K { z[j] = (expf(z[j] - lse[n]) - e / Float(K)) * s }
    z[y] -= (1 - e) * s
  }
}
