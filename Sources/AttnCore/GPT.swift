// A Transformer with pre-LayerNorm blocks, as in GPT-2 / nanoGPT, over flat buffers:
//   x = wte[tokens] + positions;  per block: x += drop(attn(ln1(x)));  x += drop(mlp(ln2(x)))
//   logits = ln_f(x) W^T (W = wte when tied);  loss = mean cross-entropy
// A language model attends causally and predicts every next token; a masked language model attends
// both ways and predicts only the positions given a target; a classifier pools ln_f(x) into a head.
// Every buffer is allocated in init for at most `maxBatch` sequences of at most blockSize tokens;
// forward and backward allocate nothing. Legend: B T C NH V L as in Kernels/.

public final class GPT {
  public let shape: ModelShape
  public let maxBatch: Int
  public let layout: ParameterLayout
  public let parameters: FloatBuffer
  public let gradients: FloatBuffer
  /// The threads this model's kernels share work among (its attention scratch is sized for them).
  public let pool: WorkerPool
  private let acts: Activations
  private let grads: ActivationGradients
  private let positionTable: FloatBuffer?  // sinusoids [blockSize, C]
  private let rotaryCos: FloatBuffer?  // [blockSize, HS/2]
  private let rotarySin: FloatBuffer?
  private let blockOffsets: [LayerOffsets]
  private let offsets: GlobalOffsets
  /// A masked language model's last forward: the rows with a target, and those targets, side by side.
  private let predictedRows: UnsafeMutableBufferPointer<Int32>
  private let predictedTargets: UnsafeMutableBufferPointer<Int32>
  private var predictedCount = 0
  /// Every sequence whole (length T), for the bidirectional attention of a masked language model.
  private let wholeLengths: UnsafeMutableBufferPointer<Int32>

  public init(shape: ModelShape, maxBatch: Int, pool: WorkerPool = .shared) {
    precondition(shape.channels % shape.heads == 0, "channels must divide into heads")
    precondition(maxBatch >= 1 && shape.blockSize >= 1)
    self.shape = shape
    self.maxBatch = maxBatch
    self.pool = pool
    let layout = ParameterLayout(shape)
    self.layout = layout
    parameters = FloatBuffer(count: layout.count)
    gradients = FloatBuffer(count: layout.count)
    blockOffsets = (0..<shape.layers).map { LayerOffsets(layout, $0) }
    offsets = GlobalOffsets(layout)
    acts = Activations(shape, maxBatch, threads: pool.threads)
    grads = ActivationGradients(shape, maxBatch, threads: pool.threads)
    let predictable = shape.isMaskedLanguageModel ? maxBatch * shape.blockSize : 0
    predictedRows = .allocate(capacity: predictable)
    predictedTargets = .allocate(capacity: predictable)
    wholeLengths = .allocate(capacity: shape.isMaskedLanguageModel ? maxBatch : 0)
    let (T, C, HS) = (shape.blockSize, shape.channels, shape.headSize)
    if shape.positionEncoding == .sinusoidal {
      let table = FloatBuffer(count: T * C)
      fillSinusoidalPositions(table.pointer, T, C)
      positionTable = table
    } else {
      positionTable = nil
    }
    if shape.positionEncoding == .rope {
      let cosTable = FloatBuffer(count: T * HS / 2)
      let sinTable = FloatBuffer(count: T * HS / 2)
      fillRotaryTables(cosTable.pointer, sinTable.pointer, T, HS)
      (rotaryCos, rotarySin) = (cosTable, sinTable)
    } else {
      (rotaryCos, rotarySin) = (nil, nil)
    }
  }

  deinit {
    predictedRows.deallocate()
    predictedTargets.deallocate()
    wholeLengths.deallocate()
  }

  /// Bytes held by activations and their gradients (for the memory plan).
  public var activationBytes: Int { (acts.floatCount + grads.floatCount) * 4 }

  /// nanoGPT's initialisation: N(0, 0.02) for matrices and embeddings, N(0, 0.02/sqrt(2L)) for the
  /// projections into the residual stream, zero biases, unit LayerNorm weights. Keyed by tensor
  /// index, so every rank computes the same weights without communicating.
  public func initializeParameters(seed: UInt64) {
    let key = RandomKey(seed: seed, purpose: .initialization)
    let residualScale = 0.02 / Float(2 * shape.layers).squareRoot()
    let p = parameters.pointer
    for (index, tensor) in layout.tensors.enumerated() {
      let slice = p + tensor.offset
      let tensorKey = key.then(index)
      switch tensor.kind {
      case .vector:
        let value: Float = tensor.name.hasSuffix("ln1.weight") || tensor.name.hasSuffix("ln2.weight")
          || tensor.name == "ln_f.weight" ? 1 : 0
        slice.update(repeating: value, count: tensor.count)
      case .matrix, .embedding:
        let isResidualProjection = tensor.name.hasSuffix("proj.weight")
        let std: Float = isResidualProjection ? residualScale : 0.02
        for i in 0..<tensor.count { slice[i] = std * tensorKey.normal(i) }
      }
    }
  }

  public func zeroGradients() { gradients.zero() }

  // MARK: - Forward

  /// Runs the language model on tokens[B, T]. With targets, returns the SUM of the B*T token
  /// losses (callers average over however many tokens they combine); without, returns 0 and only
  /// the logits are meaningful. A masked language model predicts only the positions whose target is
  /// not negative: the sum is over those, and the logits are theirs, in order ([M, V]).
  @discardableResult
  public func forward(
    tokens: UnsafePointer<Int32>, targets: UnsafePointer<Int32>?, B: Int, T: Int,
    dropout: DropoutContext = .off
  ) -> Double {
    precondition(shape.classifier == nil, "forward(tokens:targets:) runs a language model; classify a classifier")
    if shape.isMaskedLanguageModel { wholeLengths.update(repeating: Int32(T)) }
    forwardBody(tokens: tokens, lengths: shape.isMaskedLanguageModel ? wholeLengths.baseAddress : nil, B: B, T: T, dropout: dropout)
    let (C, V) = (shape.channels, shape.vocabSize)
    let BT = B * T
    let a = acts
    let panels = a.weightPanels.pointer
    if shape.isMaskedLanguageModel, let targets { return predictMasked(targets, BT) }
    Profiler.measure(.lossHead) {
      matmulForward(a.logits.pointer, a.lnf.pointer, parameters.pointer + offsets.output!, nil, BT, C, V, pool, panels: panels)
    }
    guard let targets else { return 0 }
    crossEntropyForward(a.losses.pointer, a.lse.pointer, a.logits.pointer, targets, BT, V, pool)
    var total = 0.0
    for i in 0..<BT { total += Double(a.losses.pointer[i]) }
    return total
  }

  /// The head and loss of the rows of lnf[BT] that have a target.
  private func predictMasked(_ targets: UnsafePointer<Int32>, _ BT: Int) -> Double {
    let (C, V) = (shape.channels, shape.vocabSize)
    let a = acts
    var M = 0
    for i in 0..<BT where targets[i] >= 0 {
      predictedRows[M] = Int32(i)
      predictedTargets[M] = targets[i]
      M += 1
    }
    predictedCount = M
    guard M > 0 else { return 0 }
    let rows = UnsafePointer(predictedRows.baseAddress!)
    Profiler.measure(.lossHead) {
      selectRowsForward(a.predicted.pointer, a.lnf.pointer, rows: rows, M, C)
      matmulForward(
        a.logits.pointer, a.predicted.pointer, parameters.pointer + offsets.output!, nil, M, C, V, pool,
        panels: a.weightPanels.pointer)
    }
    crossEntropyForward(a.losses.pointer, a.lse.pointer, a.logits.pointer, predictedTargets.baseAddress!, M, V, pool)
    var total = 0.0
    for i in 0..<M { total += Double(a.losses.pointer[i]) }
    return total
  }

  /// Runs the classifier on tokens[B, T], of which sequence b's first lengths[b] are real (the rest
  /// padding, never read). With labels[B], returns the SUM of the B sequence losses; without, 0, and
  /// only the class logits are meaningful.
  @discardableResult
  public func classify(
    tokens: UnsafePointer<Int32>, lengths: UnsafePointer<Int32>, labels: UnsafePointer<Int32>?, B: Int, T: Int,
    loss: ClassificationLoss = .plain, dropout: DropoutContext = .off
  ) -> Double {
    guard let head = shape.classifier else { preconditionFailure("classify runs a classifier; forward a language model") }
    forwardBody(tokens: tokens, lengths: lengths, B: B, T: T, dropout: dropout)
    let (C, K, H) = (shape.channels, head.classes, head.hidden)
    let p = parameters.pointer
    let a = acts
    let o = offsets
    let panels = a.weightPanels.pointer
    Profiler.measure(.pooling) { poolingForward(a.pooled.pointer, a.lnf.pointer, lengths: lengths, head.pooling, B, T, C) }
    Profiler.measure(.lossHead) {
      if H > 0 {
        matmulForward(a.hiddenSlope.pointer, a.pooled.pointer, p + o.hiddenWeight!, p + o.hiddenBias!, B, C, H, pool, panels: panels)
        geluForward(a.hidden.pointer, slope: a.hiddenSlope.pointer, a.hiddenSlope.pointer, B * H, pool)
        dropoutInPlace(a.hidden.pointer, B, H, dropout, layer: shape.layers, site: .classifierHidden)
      }
      let features = H > 0 ? a.hidden.pointer : a.pooled.pointer
      matmulForward(a.logits.pointer, features, p + o.classWeight!, p + o.classBias!, B, H > 0 ? H : C, K, pool, panels: panels)
    }
    guard let labels else { return 0 }
    classificationLossForward(a.losses.pointer, a.lse.pointer, a.logits.pointer, labels, loss, B, K)
    var total = 0.0
    for i in 0..<B { total += Double(a.losses.pointer[i]) }
    return total
  }

  /// Embeddings, the blocks and the final LayerNorm, up to lnf[B, T, C]. `lengths` (a classifier's)
  /// masks the padding out of bidirectional attention; causal attention never sees it.
  private func forwardBody(tokens: UnsafePointer<Int32>, lengths: UnsafePointer<Int32>?, B: Int, T: Int, dropout: DropoutContext) {
    precondition(B >= 1 && B <= maxBatch && T >= 1 && T <= shape.blockSize, "batch exceeds the plan")
    let (C, NH, L) = (shape.channels, shape.heads, shape.layers)
    let BT = B * T
    let p = parameters.pointer
    let a = acts
    let o = offsets
    let panels = a.weightPanels.pointer
    let bidirectional = shape.attention == .bidirectional

    let positions: UnsafePointer<Float>? =
      switch shape.positionEncoding {
      case .learned: UnsafePointer(p + o.wpe!)
      case .sinusoidal: UnsafePointer(positionTable!.pointer)
      case .rope: nil
      }
    Profiler.measure(.embedding) { embeddingForward(a.encoded.pointer, tokens, p + o.wte, positions, B, T, C) }
    Profiler.measure(.dropout) { dropoutInPlace(a.encoded.pointer, B, T * C, dropout, layer: L, site: .embedding) }

    for l in 0..<L {
      let w = LayerWeights(blockOffsets[l], p)
      let s = a.layer(l, maxBatch, shape)
      let residual = l == 0 ? a.encoded.pointer : a.layer(l - 1, maxBatch, shape).res3
      Profiler.measure(.layerNorm) { layerNormForward(s.ln1, s.ln1Mean, s.ln1Rstd, residual, w.ln1w, w.ln1b, BT, C, pool) }
      Profiler.measure(.matmul) { matmulForward(s.qkv, s.ln1, w.qkvw, w.qkvb, BT, C, 3 * C, pool, panels: panels) }
      if let rotaryCos, let rotarySin {
        Profiler.measure(.rotary) {
          rotaryInPlace(s.qkv, rotaryCos.pointer, rotarySin.pointer, direction: 1, B, T, C, NH)
        }
      }
      Profiler.measure(.attention) {
        if bidirectional {
          bidirectionalAttentionForward(s.atty, s.att, s.qkv, lengths: lengths!, a.scratch.pointer, dropout, layer: l, B, T, C, NH, pool)
        } else {
          attentionForward(s.atty, s.att, s.qkv, a.scratch.pointer, dropout, layer: l, B, T, C, NH, pool)
        }
      }
      branchIntoResidual(
        s.res2, residual, s.attproj, s.atty, w.projw, w.projb, inputs: C, dropout, layer: l, site: .attentionOutput,
        B, T, C, panels)
      Profiler.measure(.layerNorm) { layerNormForward(s.ln2, s.ln2Mean, s.ln2Rstd, s.res2, w.ln2w, w.ln2b, BT, C, pool) }
      Profiler.measure(.matmul) { matmulForward(s.fch, s.ln2, w.fcw, w.fcb, BT, C, 4 * C, pool, panels: panels) }
      Profiler.measure(.gelu) { geluForward(s.fchGelu, slope: s.fch, s.fch, BT * 4 * C, pool) }
      branchIntoResidual(
        s.res3, s.res2, s.fcproj, s.fchGelu, w.fcprojw, w.fcprojb, inputs: 4 * C, dropout, layer: l, site: .mlpOutput,
        B, T, C, panels)
    }

    let last = L == 0 ? a.encoded.pointer : a.layer(L - 1, maxBatch, shape).res3
    Profiler.measure(.layerNorm) {
      layerNormForward(
        a.lnf.pointer, a.lnfMean.pointer, a.lnfRstd.pointer, last, p + o.lnfw, p + o.lnfb, BT, C, pool)
    }
  }

  /// out = residual + dropout(input @ weight^T + bias): a block's projection back into the residual
  /// stream, input [B*T, inputs]. Without dropout the product stores the sum itself (the same bits
  /// as the three passes, which dropout needs: its mask falls between the product and the sum).
  private func branchIntoResidual(
    _ out: UnsafeMutablePointer<Float>, _ residual: UnsafePointer<Float>, _ branch: UnsafeMutablePointer<Float>,
    _ input: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>, inputs: Int,
    _ dropout: DropoutContext, layer: Int, site: DropoutSite, _ B: Int, _ T: Int, _ C: Int,
    _ panels: UnsafeMutablePointer<Float>
  ) {
    guard dropout.isActive else {
      Profiler.measure(.matmul) {
        matmulForward(out, input, weight, bias, adding: residual, B * T, inputs, C, pool, panels: panels)
      }
      return
    }
    Profiler.measure(.matmul) { matmulForward(branch, input, weight, bias, B * T, inputs, C, pool, panels: panels) }
    Profiler.measure(.dropout) { dropoutInPlace(branch, B, T * C, dropout, layer: layer, site: site) }
    Profiler.measure(.residual) { residualForward(out, residual, branch, B * T * C, pool) }
  }

  /// Logits of the last forward: [B, T, V] for a language model, [B, classes] for a classifier;
  /// overwritten by backward.
  public var logits: UnsafePointer<Float> { UnsafePointer(acts.logits.pointer) }
  /// Per-token losses [B, T] of the last forward with targets.
  public var tokenLosses: UnsafePointer<Float> { UnsafePointer(acts.losses.pointer) }

  // MARK: - Backward

  /// Backpropagates `lossScale * (sum of token losses)` of the preceding forward, which must have had
  /// targets and the same tokens, B, T and dropout. With `accumulate` (the default) parameter
  /// gradients are added (+=), so micro-steps add up after zeroGradients(); without, they are written
  /// (=), as if zeroed first: a step's first micro-step then spares a pass over the whole buffer, and
  /// the weight-gradient products do not read it.
  /// `gradientsReady` hears each range of the gradient buffer as soon as backward will no longer
  /// write it: ln_f and lm_head first, then each block's tensors as its backward finishes them, from
  /// the last block to the first, then the embeddings; together the ranges cover the buffer once,
  /// from its end down. A data-parallel trainer starts reducing them while backward goes on; ranges
  /// finer than a block leave less to reduce after the last one (the first block's tail).
  public func backward(
    tokens: UnsafePointer<Int32>, targets: UnsafePointer<Int32>, B: Int, T: Int,
    lossScale: Float, dropout: DropoutContext = .off, accumulate: Bool = true,
    gradientsReady: (Range<Int>) -> Void = { _ in }
  ) {
    let (C, V) = (shape.channels, shape.vocabSize)
    let BT = B * T
    let a = acts
    let output = offsets.output!
    let dlogits = a.logits.pointer
    if shape.isMaskedLanguageModel {
      backwardMasked(BT, lossScale: lossScale, accumulate: accumulate)
    } else {
      Profiler.measure(.crossEntropy, backward: true) {
        crossEntropyBackwardInPlace(dlogits, a.lse.pointer, targets, scale: lossScale, BT, V, pool)
      }
      Profiler.measure(.lossHead, backward: true) {
        matmulBackward(
          grads.dln.pointer, gradients.pointer + output, nil, dlogits, a.lnf.pointer, parameters.pointer + output, BT, C,
          V, pool, panels: a.weightPanels.pointer, accumulate: accumulate)
      }
    }
    backwardBody(
      tokens: tokens, lengths: shape.isMaskedLanguageModel ? wholeLengths.baseAddress : nil, B: B, T: T, dropout: dropout,
      accumulate: accumulate, gradientsReady: gradientsReady)
  }

  /// The masked head's backward, from the rows the forward predicted to d(lnf) in grads.dln (zero
  /// in the rows without a target).
  private func backwardMasked(_ BT: Int, lossScale: Float, accumulate: Bool) {
    let (C, V, M) = (shape.channels, shape.vocabSize, predictedCount)
    let a = acts
    let output = offsets.output!
    let rows = UnsafePointer(predictedRows.baseAddress!)
    guard M > 0 else {
      grads.dln.pointer.update(repeating: 0, count: BT * C)
      if !accumulate { (gradients.pointer + output).update(repeating: 0, count: V * C) }
      return
    }
    Profiler.measure(.crossEntropy, backward: true) {
      crossEntropyBackwardInPlace(a.logits.pointer, a.lse.pointer, predictedTargets.baseAddress!, scale: lossScale, M, V, pool)
    }
    Profiler.measure(.lossHead, backward: true) {
      matmulBackward(
        grads.dpredicted.pointer, gradients.pointer + output, nil, a.logits.pointer, a.predicted.pointer,
        parameters.pointer + output, M, C, V, pool, panels: a.weightPanels.pointer, accumulate: accumulate)
      selectRowsBackward(grads.dln.pointer, grads.dpredicted.pointer, rows: rows, M, BT, C)
    }
  }

  /// The classifier's backward: as `backward`, for `lossScale * (sum of sequence losses)` of the
  /// preceding classify, which must have had labels and the same tokens, lengths, B, T and dropout.
  public func backwardClassifier(
    tokens: UnsafePointer<Int32>, lengths: UnsafePointer<Int32>, labels: UnsafePointer<Int32>, B: Int, T: Int,
    loss: ClassificationLoss = .plain, lossScale: Float, dropout: DropoutContext = .off, accumulate: Bool = true,
    gradientsReady: (Range<Int>) -> Void = { _ in }
  ) {
    guard let head = shape.classifier else { preconditionFailure("backwardClassifier runs a classifier") }
    let (C, K, H) = (shape.channels, head.classes, head.hidden)
    let p = parameters.pointer
    let g = gradients.pointer
    let a = acts
    let d = grads
    let o = offsets
    let panels = a.weightPanels.pointer
    let dlogits = a.logits.pointer
    Profiler.measure(.crossEntropy, backward: true) {
      classificationLossBackwardInPlace(dlogits, a.lse.pointer, labels, loss, scale: lossScale, B, K)
    }
    Profiler.measure(.lossHead, backward: true) {
      if H > 0 {
        // hidden = dropout(gelu(pre)): the gradient goes back through dropout's mask, then GELU's slope.
        matmulBackward(
          d.dhidden.pointer, g + o.classWeight!, g + o.classBias!, dlogits, a.hidden.pointer, p + o.classWeight!, B, H, K,
          pool, panels: panels, accumulate: accumulate)
        dropoutInPlace(d.dhidden.pointer, B, H, dropout, layer: shape.layers, site: .classifierHidden)
        geluBackward(d.dhidden.pointer, slope: a.hiddenSlope.pointer, d.dhidden.pointer, B * H, pool)
        matmulBackward(
          d.dpooled.pointer, g + o.hiddenWeight!, g + o.hiddenBias!, d.dhidden.pointer, a.pooled.pointer,
          p + o.hiddenWeight!, B, C, H, pool, panels: panels, accumulate: accumulate)
      } else {
        matmulBackward(
          d.dpooled.pointer, g + o.classWeight!, g + o.classBias!, dlogits, a.pooled.pointer, p + o.classWeight!, B, C, K,
          pool, panels: panels, accumulate: accumulate)
      }
    }
    Profiler.measure(.pooling, backward: true) {
      poolingBackward(d.dln.pointer, d.dpooled.pointer, a.lnf.pointer, lengths: lengths, head.pooling, B, T, C)
    }
    backwardBody(tokens: tokens, lengths: lengths, B: B, T: T, dropout: dropout, accumulate: accumulate, gradientsReady: gradientsReady)
  }

  /// From d(lnf) in grads.dln down to the embeddings.
  private func backwardBody(
    tokens: UnsafePointer<Int32>, lengths: UnsafePointer<Int32>?, B: Int, T: Int, dropout: DropoutContext,
    accumulate: Bool, gradientsReady: (Range<Int>) -> Void
  ) {
    let (C, NH, V, L) = (shape.channels, shape.heads, shape.vocabSize, shape.layers)
    let BT = B * T
    let p = parameters.pointer
    let g = gradients.pointer
    let a = acts
    let d = grads
    let panels = a.weightPanels.pointer
    let o = offsets
    let bidirectional = shape.attention == .bidirectional
    let dresidual = d.residual.pointer
    dresidual.update(repeating: 0, count: BT * C)
    let last = L == 0 ? a.encoded.pointer : a.layer(L - 1, maxBatch, shape).res3
    Profiler.measure(.layerNorm, backward: true) {
      layerNormBackward(
        dresidual, g + o.lnfw, g + o.lnfb, d.dln.pointer, last, p + o.lnfw,
        a.lnfMean.pointer, a.lnfRstd.pointer, BT, C, pool, accumulate: accumulate)
    }
    // With a tied head, wte's gradient is not final until the embedding backward at the very end.
    // (A classifier's head lies after ln_f, and is final here too.)
    gradientsReady(layout.layerRanges[L - 1].upperBound..<layout.count)

    for l in stride(from: L - 1, through: 0, by: -1) {
      let w = LayerWeights(blockOffsets[l], p)
      let dw = LayerWeights(blockOffsets[l], g)
      let at = blockOffsets[l]
      let s = a.layer(l, maxBatch, shape)
      let residual = l == 0 ? a.encoded.pointer : a.layer(l - 1, maxBatch, shape).res3
      // dresidual holds d(res3); res3 = res2 + drop(fcproj) passes it through to res2 unchanged.
      // The branch's gradient is dresidual through dropout's mask: a copy only when there is a mask
      // (without one, each product reads dresidual before LayerNorm's backward adds to it).
      let dbranch = dropout.isActive ? d.branch.pointer : dresidual
      if dropout.isActive { dbranch.update(from: dresidual, count: BT * C) }
      Profiler.measure(.dropout, backward: true) {
        dropoutInPlace(dbranch, B, T * C, dropout, layer: l, site: .mlpOutput)
      }
      Profiler.measure(.matmul, backward: true) {
        // d(fchGelu) times GELU's slope is d(fch): the product applies it as it stores.
        matmulBackward(
          d.dfch.pointer, dw.fcprojw, dw.fcprojb, dbranch, s.fchGelu, w.fcprojw, BT, 4 * C, C, pool, panels: panels,
          geluSlope: s.fch, accumulate: accumulate)
      }
      gradientsReady(at.fcprojw..<layout.layerRanges[l].upperBound)
      Profiler.measure(.matmul, backward: true) {
        matmulBackward(
          d.dln.pointer, dw.fcw, dw.fcb, d.dfch.pointer, s.ln2, w.fcw, BT, C, 4 * C, pool, panels: panels,
          accumulate: accumulate)
      }
      gradientsReady(at.fcw..<at.fcprojw)
      Profiler.measure(.layerNorm, backward: true) {
        layerNormBackward(
          dresidual, dw.ln2w, dw.ln2b, d.dln.pointer, s.res2, w.ln2w, s.ln2Mean, s.ln2Rstd, BT, C, pool,
          accumulate: accumulate)
      }
      gradientsReady(at.ln2w..<at.fcw)
      // dresidual now holds d(res2); res2 = residual + drop(attproj).
      if dropout.isActive { dbranch.update(from: dresidual, count: BT * C) }
      Profiler.measure(.dropout, backward: true) {
        dropoutInPlace(dbranch, B, T * C, dropout, layer: l, site: .attentionOutput)
      }
      Profiler.measure(.matmul, backward: true) {
        matmulBackward(
          d.datty.pointer, dw.projw, dw.projb, dbranch, s.atty, w.projw, BT, C, C, pool, panels: panels,
          accumulate: accumulate)
      }
      gradientsReady(at.projw..<at.ln2w)
      Profiler.measure(.attention, backward: true) {
        if bidirectional {
          bidirectionalAttentionBackward(
            d.dqkv.pointer, d.datty.pointer, s.qkv, s.att, lengths: lengths!, a.scratch.pointer, d.scratch.pointer,
            dropout, layer: l, B, T, C, NH, pool)
        } else {
          attentionBackward(
            d.dqkv.pointer, d.datty.pointer, s.qkv, s.att, a.scratch.pointer, d.scratch.pointer,
            dropout, layer: l, B, T, C, NH, pool)
        }
      }
      if let rotaryCos, let rotarySin {
        Profiler.measure(.rotary, backward: true) {
          rotaryInPlace(d.dqkv.pointer, rotaryCos.pointer, rotarySin.pointer, direction: -1, B, T, C, NH)
        }
      }
      Profiler.measure(.matmul, backward: true) {
        matmulBackward(
          d.dln.pointer, dw.qkvw, dw.qkvb, d.dqkv.pointer, s.ln1, w.qkvw, BT, C, 3 * C, pool, panels: panels,
          accumulate: accumulate)
      }
      gradientsReady(at.qkvw..<at.projw)
      Profiler.measure(.layerNorm, backward: true) {
        layerNormBackward(
          dresidual, dw.ln1w, dw.ln1b, d.dln.pointer, residual, w.ln1w, s.ln1Mean, s.ln1Rstd, BT, C, pool,
          accumulate: accumulate)
      }
      gradientsReady(at.ln1w..<at.qkvw)
    }

    Profiler.measure(.dropout, backward: true) {
      dropoutInPlace(dresidual, B, T * C, dropout, layer: L, site: .embedding)
    }
    Profiler.measure(.embedding, backward: true) {
      // A tied head has already written wte's gradient (=); an untied wte has had no writer yet.
      if !accumulate {
        if o.output != o.wte { (g + o.wte).update(repeating: 0, count: V * C) }  // untied, or a classifier
        if let wpe = o.wpe { (g + wpe).update(repeating: 0, count: shape.blockSize * C) }
      }
      embeddingBackward(g + o.wte, o.wpe.map { g + $0 }, dresidual, tokens, B, T, C)
    }
    gradientsReady(0..<layout.layerRanges[0].lowerBound)
  }
}

// MARK: - Buffers

/// Offsets of one block's twelve tensors, computed once so a step does no name lookups.
private struct LayerOffsets {
  let ln1w, ln1b, qkvw, qkvb, projw, projb, ln2w, ln2b, fcw, fcb, fcprojw, fcprojb: Int

  init(_ layout: ParameterLayout, _ l: Int) {
    func at(_ suffix: String) -> Int { layout["h.\(l).\(suffix)"]!.offset }
    (ln1w, ln1b) = (at("ln1.weight"), at("ln1.bias"))
    (qkvw, qkvb) = (at("attn.qkv.weight"), at("attn.qkv.bias"))
    (projw, projb) = (at("attn.proj.weight"), at("attn.proj.bias"))
    (ln2w, ln2b) = (at("ln2.weight"), at("ln2.bias"))
    (fcw, fcb) = (at("mlp.fc.weight"), at("mlp.fc.bias"))
    (fcprojw, fcprojb) = (at("mlp.proj.weight"), at("mlp.proj.bias"))
  }
}

/// Pointers to one block's parameters (or gradients: same layout, other base).
private struct LayerWeights {
  let ln1w, ln1b, qkvw, qkvb, projw, projb, ln2w, ln2b, fcw, fcb, fcprojw, fcprojb:
    UnsafeMutablePointer<Float>

  init(_ o: LayerOffsets, _ base: UnsafeMutablePointer<Float>) {
    (ln1w, ln1b) = (base + o.ln1w, base + o.ln1b)
    (qkvw, qkvb) = (base + o.qkvw, base + o.qkvb)
    (projw, projb) = (base + o.projw, base + o.projb)
    (ln2w, ln2b) = (base + o.ln2w, base + o.ln2b)
    (fcw, fcb) = (base + o.fcw, base + o.fcb)
    (fcprojw, fcprojb) = (base + o.fcprojw, base + o.fcprojb)
  }
}

/// Offsets of the tensors outside the blocks.
private struct GlobalOffsets {
  let wte: Int
  let wpe: Int?
  let lnfw, lnfb: Int
  /// A language model's output layer: wte when tied, lm_head.weight otherwise; nil for a classifier.
  let output: Int?
  let hiddenWeight, hiddenBias, classWeight, classBias: Int?

  init(_ layout: ParameterLayout) {
    wte = layout["wte"]!.offset
    wpe = layout["wpe"]?.offset
    lnfw = layout["ln_f.weight"]!.offset
    lnfb = layout["ln_f.bias"]!.offset
    let classifier = layout["classifier.out.weight"] != nil
    output = classifier ? nil : layout["lm_head.weight"]?.offset ?? wte
    hiddenWeight = layout["classifier.hidden.weight"]?.offset
    hiddenBias = layout["classifier.hidden.bias"]?.offset
    classWeight = layout["classifier.out.weight"]?.offset
    classBias = layout["classifier.out.bias"]?.offset
  }
}
