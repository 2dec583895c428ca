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
  let predicted: FloatBuffer  // (B*T, C) a masked language model's lnf rows that have targets, side by side; else empty
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

  /// `make` allocates each buffer; plannedFloats passes one that only counts.
  init(_ shape: ModelShape, _ B: Int, threads: Int, make: (Int) -> FloatBuffer = { FloatBuffer(count: $0) }) {
    let (T, C, NH, V, L) = (shape.blockSize, shape.channels, shape.heads, shape.vocabSize, shape.layers)
    let BT = B * T
    encoded = make(BT * C)
    ln1 = make(L * BT * C)
    ln1Mean = make(L * BT)
    ln1Rstd = make(L * BT)
    qkv = make(L * BT * 3 * C)
    atty = make(L * BT * C)
    att = make(L * B * NH * T * T)
    attproj = make(L * BT * C)
    res2 = make(L * BT * C)
    ln2 = make(L * BT * C)
    ln2Mean = make(L * BT)
    ln2Rstd = make(L * BT)
    fch = make(L * BT * 4 * C)
    fchGelu = make(L * BT * 4 * C)
    fcproj = make(L * BT * C)
    res3 = make(L * BT * C)
    lnf = make(BT * C)
    lnfMean = make(BT)
    lnfRstd = make(BT)
    let masked = shape.isMaskedLanguageModel
    predicted = make(masked ? BT * C : 0)
    let head = shape.classifier
    let (K, H) = (head?.classes ?? 0, head?.hidden ?? 0)
    let outputRows = head == nil ? BT : B
    logits = make(outputRows * (head == nil ? V : K))
    lse = make(outputRows)
    losses = make(outputRows)
    pooled = make(head == nil ? 0 : B * C)
    hiddenSlope = make(B * H)
    hidden = make(B * H)
    scratch = make(threads * attentionScratchPerThread(blockSize: T, headSize: shape.headSize))
    let output = head == nil ? [(V, C)] : H > 0 ? [(H, C), (K, H)] : [(K, C)]
    let linearShapes = [(3 * C, C), (C, C), (4 * C, C), (C, 4 * C)] + output
    weightPanels = make(linearShapes.compactMap { weightPanelFloats(outputs: $0, inputs: $1) }.max() ?? 0)
  }

  var floatCount: Int {
    [encoded, ln1, ln1Mean, ln1Rstd, qkv, atty, att, attproj, res2, ln2, ln2Mean, ln2Rstd, fch, fchGelu,
     fcproj, res3, lnf, lnfMean, lnfRstd, predicted, logits, lse, losses, pooled, hiddenSlope, hidden, scratch, weightPanels]
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
  let dpredicted: FloatBuffer  // (B*T, C) a masked language model's d(predicted); else empty

  init(_ shape: ModelShape, _ B: Int, threads: Int, make: (Int) -> FloatBuffer = { FloatBuffer(count: $0) }) {
    let (T, C) = (shape.blockSize, shape.channels)
    dpooled = make(shape.classifier == nil ? 0 : B * C)
    dhidden = make(B * (shape.classifier?.hidden ?? 0))
    let BT = B * T
    dpredicted = make(shape.isMaskedLanguageModel ? BT * C : 0)
    residual = make(BT * C)
    branch = make(BT * C)
    dln = make(BT * C)
    datty = make(BT * C)
    dqkv = make(BT * 3 * C)
    dfch = make(BT * 4 * C)
    scratch = make(threads * attentionScratchPerThread(blockSize: T, headSize: shape.headSize))
  }

  var floatCount: Int {
    [residual, branch, dln, datty, dqkv, dfch, scratch, dpooled, dhidden, dpredicted].reduce(0) { $0 + $1.count }
  }
}

/// The floats a model's activations and their gradients will take, found by running the two
/// initialisers with an allocator that only counts: the same code sizes the plan and the buffers,
/// and nothing large is allocated to find out.
func plannedActivationFloats(_ shape: ModelShape, _ B: Int, threads: Int) -> Int {
  var total = 0
  let empty = FloatBuffer(count: 0)
  let count: (Int) -> FloatBuffer = {
    total += $0
    return empty
  }
  _ = Activations(shape, B, threads: threads, make: count)
  _ = ActivationGradients(shape, B, threads: threads, make: count)
  return total
}
