// What the model keeps between forward and backward, one flat buffer per kind, each field with its
// shape (as ParameterLayout names the parameters' slices). Per-layer buffers are stacked over the L
// blocks, each block's slice taken by `layer(_:)`; B is the model's maxBatch. Allocated once, in
// GPT.init; a step allocates nothing. Legend: B T C NH V L as in Kernels/, HS = C / NH.

/// The forward's activations, kept for the backward.
final class Activations {
  let encoded: FloatBuffer  // (B, T, C) token + position embeddings, after dropout
  let ln1: FloatBuffer  // (L, B, T, C)
  let ln1Mean: FloatBuffer  // (L, B, T)
  let ln1Rstd: FloatBuffer  // (L, B, T)
  let qkv: FloatBuffer  // (L, B, T, 3C) queries, keys, values (rotated, with rope)
  let atty: FloatBuffer  // (L, B, T, C) attention output, heads side by side
  let att: FloatBuffer  // (L, B, NH, T, T) softmax weights before dropout, zero above the diagonal
  let attproj: FloatBuffer  // (L, B, T, C) attention projection (only with dropout)
  let res2: FloatBuffer  // (L, B, T, C) residual after attention
  let ln2: FloatBuffer  // (L, B, T, C)
  let ln2Mean: FloatBuffer  // (L, B, T)
  let ln2Rstd: FloatBuffer  // (L, B, T)
  let fch: FloatBuffer  // (L, B, T, 4C) fc's output until GELU replaces it with GELU's slope there
  let fchGelu: FloatBuffer  // (L, B, T, 4C)
  let fcproj: FloatBuffer  // (L, B, T, C) MLP projection (only with dropout)
  let res3: FloatBuffer  // (L, B, T, C) residual after the MLP: the block's output
  let lnf: FloatBuffer  // (B, T, C)
  let lnfMean: FloatBuffer  // (B, T)
  let lnfRstd: FloatBuffer  // (B, T)
  let logits: FloatBuffer  // (B, T, V), a classifier's (B, K); backward overwrites it with d(logits)
  let lse: FloatBuffer  // (B, T), a classifier's (B): log-sum-exp of each row of logits
  let losses: FloatBuffer  // (B, T) per-token cross-entropy, a classifier's (B) per sequence
  let pooled: FloatBuffer  // (B, C) a classifier's pooled lnf; empty for a language model
  let hiddenSlope: FloatBuffer  // (B, H) the hidden layer's input, then GELU's slope there (H: hidden width)
  let hidden: FloatBuffer  // (B, H) the hidden layer's output, after dropout
  let scratch: FloatBuffer  // (threads, attentionScratchPerThread) per-thread attention workspace
  /// Each linear layer's weight, packed for its products in turn (forward and backward share it):
  /// (the largest of weightPanelFloats over the five linear shapes).
  let weightPanels: FloatBuffer

  init(_ shape: ModelShape, _ B: Int, threads: Int) {
    let (T, C, NH, V, L) = (shape.blockSize, shape.channels, shape.heads, shape.vocabSize, shape.layers)
    let BT = B * T
    encoded = FloatBuffer(count: BT * C)
    ln1 = FloatBuffer(count: L * BT * C)
    ln1Mean = FloatBuffer(count: L * BT)
    ln1Rstd = FloatBuffer(count: L * BT)
    qkv = FloatBuffer(count: L * BT * 3 * C)
    atty = FloatBuffer(count: L * BT * C)
    att = FloatBuffer(count: L * B * NH * T * T)
    attproj = FloatBuffer(count: L * BT * C)
    res2 = FloatBuffer(count: L * BT * C)
    ln2 = FloatBuffer(count: L * BT * C)
    ln2Mean = FloatBuffer(count: L * BT)
    ln2Rstd = FloatBuffer(count: L * BT)
    fch = FloatBuffer(count: L * BT * 4 * C)
    fchGelu = FloatBuffer(count: L * BT * 4 * C)
    fcproj = FloatBuffer(count: L * BT * C)
    res3 = FloatBuffer(count: L * BT * C)
    lnf = FloatBuffer(count: BT * C)
    lnfMean = FloatBuffer(count: BT)
    lnfRstd = FloatBuffer(count: BT)
    let head = shape.classifier
    let (K, H) = (head?.classes ?? 0, head?.hidden ?? 0)
    let outputRows = head == nil ? BT : B
    logits = FloatBuffer(count: outputRows * (head == nil ? V : K))
    lse = FloatBuffer(count: outputRows)
    losses = FloatBuffer(count: outputRows)
    pooled = FloatBuffer(count: head == nil ? 0 : B * C)
    hiddenSlope = FloatBuffer(count: B * H)
    hidden = FloatBuffer(count: B * H)
    scratch = FloatBuffer(count: threads * attentionScratchPerThread(blockSize: T, headSize: shape.headSize))
    let output = head == nil ? [(V, C)] : H > 0 ? [(H, C), (K, H)] : [(K, C)]
    let linearShapes = [(3 * C, C), (C, C), (4 * C, C), (C, 4 * C)] + output
    weightPanels = FloatBuffer(count: linearShapes.compactMap { weightPanelFloats(outputs: $0, inputs: $1) }.max() ?? 0)
  }

  var floatCount: Int {
    [encoded, ln1, ln1Mean, ln1Rstd, qkv, atty, att, attproj, res2, ln2, ln2Mean, ln2Rstd, fch, fchGelu,
     fcproj, res3, lnf, lnfMean, lnfRstd, logits, lse, losses, pooled, hiddenSlope, hidden, scratch, weightPanels]
      .reduce(0) { $0 + $1.count }
  }

  /// Block l's slice of each per-layer buffer, for a batch laid out with B sequences.
  struct Layer {
    let ln1, ln1Mean, ln1Rstd, qkv, atty, att, attproj, res2: UnsafeMutablePointer<Float>
    let ln2, ln2Mean, ln2Rstd, fch, fchGelu, fcproj, res3: UnsafeMutablePointer<Float>
  }

  func layer(_ l: Int, _ B: Int, _ shape: ModelShape) -> Layer {
    let (T, C, NH) = (shape.blockSize, shape.channels, shape.heads)
    let BTC = B * T * C
    let BT = B * T
    return Layer(
      ln1: ln1.pointer + l * BTC, ln1Mean: ln1Mean.pointer + l * BT, ln1Rstd: ln1Rstd.pointer + l * BT,
      qkv: qkv.pointer + l * 3 * BTC, atty: atty.pointer + l * BTC,
      att: att.pointer + l * B * NH * T * T, attproj: attproj.pointer + l * BTC,
      res2: res2.pointer + l * BTC,
      ln2: ln2.pointer + l * BTC, ln2Mean: ln2Mean.pointer + l * BT, ln2Rstd: ln2Rstd.pointer + l * BT,
      fch: fch.pointer + l * 4 * BTC, fchGelu: fchGelu.pointer + l * 4 * BTC,
      fcproj: fcproj.pointer + l * BTC, res3: res3.pointer + l * BTC)
  }
}

/// Gradients of activations: one block's worth, reused from the top block down.
final class ActivationGradients {
  let residual: FloatBuffer  // (B, T, C) d(residual stream) at the current block
  let branch: FloatBuffer  // (B, T, C) d(branch) through dropout's mask (only with dropout)
  let dln: FloatBuffer  // (B, T, C) d(LayerNorm output)
  let datty: FloatBuffer  // (B, T, C)
  let dqkv: FloatBuffer  // (B, T, 3C)
  let dfch: FloatBuffer  // (B, T, 4C)
  let scratch: FloatBuffer  // (threads, attentionScratchPerThread)
  let dpooled: FloatBuffer  // (B, C) a classifier's d(pooled)
  let dhidden: FloatBuffer  // (B, H) d(hidden), then d(hidden layer's input)

  init(_ shape: ModelShape, _ B: Int, threads: Int) {
    let (T, C) = (shape.blockSize, shape.channels)
    dpooled = FloatBuffer(count: shape.classifier == nil ? 0 : B * C)
    dhidden = FloatBuffer(count: B * (shape.classifier?.hidden ?? 0))
    let BT = B * T
    residual = FloatBuffer(count: BT * C)
    branch = FloatBuffer(count: BT * C)
    dln = FloatBuffer(count: BT * C)
    datty = FloatBuffer(count: BT * C)
    dqkv = FloatBuffer(count: BT * 3 * C)
    dfch = FloatBuffer(count: BT * 4 * C)
    scratch = FloatBuffer(count: threads * attentionScratchPerThread(blockSize: T, headSize: shape.headSize))
  }

  var floatCount: Int {
    [residual, branch, dln, datty, dqkv, dfch, scratch, dpooled, dhidden].reduce(0) { $0 + $1.count }
  }
}
