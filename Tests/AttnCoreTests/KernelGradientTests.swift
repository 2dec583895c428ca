// Every forward/backward pair against central finite differences, at odd shapes.

@testable import AttnCore
import Foundation
import Testing

@Suite struct KernelGradientTests {
  /// Both ways a linear layer is computed: sgemm, and the weight packed into panels (19 outputs: one
  /// whole 16-column panel and a partial one).
  @Test(arguments: [false, true]) func matmul(packed: Bool) {
    let (BT, C, OC) = (5, 7, packed ? 19 : 3)
    let panels = FloatBuffer(count: weightPanelFloats(outputs: OC, inputs: C)!)
    let scratch = packed ? panels.pointer : nil
    let inp = randomBuffer(BT * C, seed: 1)
    let weight = randomBuffer(OC * C, seed: 2)
    let bias = randomBuffer(OC, seed: 3)
    let out = FloatBuffer(count: BT * OC)
    let dout = randomBuffer(BT * OC, seed: 4)
    func objective() -> Double {
      matmulForward(out.pointer, inp.pointer, weight.pointer, bias.pointer, BT, C, OC, .serial, panels: scratch)
      return weightedSum(out.pointer, dout.pointer, BT * OC)
    }
    let (dinp, dweight, dbias) = (FloatBuffer(count: BT * C), FloatBuffer(count: OC * C), FloatBuffer(count: OC))
    _ = objective()
    matmulBackward(
      dinp.pointer, dweight.pointer, dbias.pointer, dout.pointer, inp.pointer, weight.pointer, BT, C, OC, .serial,
      panels: scratch)
    expectGradientMatches("inp", analytic: dinp.pointer, x: inp.pointer, count: BT * C, objective: objective)
    expectGradientMatches("weight", analytic: dweight.pointer, x: weight.pointer, count: OC * C, objective: objective)
    expectGradientMatches("bias", analytic: dbias.pointer, x: bias.pointer, count: OC, objective: objective)
  }

  /// On one thread the parameter gradients are summed in the input gradient's pass over the rows; on
  /// more, in a pass of their own over the columns.
  @Test(arguments: [1, 2]) func layerNorm(threads: Int) {
    let (N, C) = (4, 9)
    let inp = randomBuffer(N * C, seed: 5, scale: 2)
    let weight = randomBuffer(C, seed: 6, scale: 0.5, offset: 1)
    let bias = randomBuffer(C, seed: 7)
    let (out, mean, rstd) = (FloatBuffer(count: N * C), FloatBuffer(count: N), FloatBuffer(count: N))
    let dout = randomBuffer(N * C, seed: 8)
    func objective() -> Double {
      layerNormForward(out.pointer, mean.pointer, rstd.pointer, inp.pointer, weight.pointer, bias.pointer, N, C, .serial)
      return weightedSum(out.pointer, dout.pointer, N * C)
    }
    let (dinp, dweight, dbias) = (FloatBuffer(count: N * C), FloatBuffer(count: C), FloatBuffer(count: C))
    _ = objective()
    layerNormBackward(
      dinp.pointer, dweight.pointer, dbias.pointer, dout.pointer, inp.pointer, weight.pointer,
      mean.pointer, rstd.pointer, N, C, threads == 1 ? .serial : WorkerPool(threads: threads))
    expectGradientMatches("inp", analytic: dinp.pointer, x: inp.pointer, count: N * C, objective: objective)
    expectGradientMatches("weight", analytic: dweight.pointer, x: weight.pointer, count: C, objective: objective)
    expectGradientMatches("bias", analytic: dbias.pointer, x: bias.pointer, count: C, objective: objective)
  }

  @Test func gelu() {
    let N = 37
    let inp = randomBuffer(N, seed: 9, scale: 3)
    let out = FloatBuffer(count: N)
    let slope = FloatBuffer(count: N)
    let dout = randomBuffer(N, seed: 10)
    func objective() -> Double {
      geluForward(out.pointer, slope: slope.pointer, inp.pointer, N, .serial)
      return weightedSum(out.pointer, dout.pointer, N)
    }
    _ = objective()
    let dinp = FloatBuffer(count: N)
    geluBackward(dinp.pointer, slope: slope.pointer, dout.pointer, N, .serial)
    expectGradientMatches("inp", analytic: dinp.pointer, x: inp.pointer, count: N, objective: objective)
  }

  @Test(arguments: [Float(0), 0.3])
  func attention(dropoutProbability: Float) {
    let (B, T, C, NH) = (2, 5, 6, 3)
    let qkv = randomBuffer(B * T * 3 * C, seed: 11, scale: 1.5)
    let out = FloatBuffer(count: B * T * C)
    let att = FloatBuffer(count: B * NH * T * T)
    let scratch = FloatBuffer(count: attentionScratchPerThread(blockSize: T, headSize: C / NH))
    let scratch2 = FloatBuffer(count: attentionScratchPerThread(blockSize: T, headSize: C / NH))
    let dout = randomBuffer(B * T * C, seed: 12)
    let dropout = DropoutContext(
      probability: dropoutProbability, stepKey: RandomKey(seed: 3, purpose: .dropout), firstGlobalSample: 4)
    func objective() -> Double {
      attentionForward(out.pointer, att.pointer, qkv.pointer, scratch.pointer, dropout, layer: 1, B, T, C, NH, .serial)
      return weightedSum(out.pointer, dout.pointer, B * T * C)
    }
    _ = objective()
    let dqkv = FloatBuffer(count: B * T * 3 * C)
    attentionBackward(
      dqkv.pointer, dout.pointer, qkv.pointer, att.pointer, scratch.pointer, scratch2.pointer, dropout,
      layer: 1, B, T, C, NH, .serial)
    expectGradientMatches("qkv", analytic: dqkv.pointer, x: qkv.pointer, count: B * T * 3 * C, objective: objective)
  }

  /// T larger than a query block (attentionBlockRows), so later blocks accumulate into dk and dv.
  @Test(arguments: [Float(0), 0.25])
  func attentionAcrossQueryBlocks(dropoutProbability: Float) {
    let (B, T, C, NH) = (1, attentionBlockRows + 7, 4, 2)
    let qkv = randomBuffer(B * T * 3 * C, seed: 31, scale: 1.5)
    let (out, att) = (FloatBuffer(count: B * T * C), FloatBuffer(count: B * NH * T * T))
    let perThread = attentionScratchPerThread(blockSize: T, headSize: C / NH)
    let (scratch, scratch2) = (FloatBuffer(count: perThread), FloatBuffer(count: perThread))
    let dout = randomBuffer(B * T * C, seed: 32)
    let dropout = DropoutContext(
      probability: dropoutProbability, stepKey: RandomKey(seed: 9, purpose: .dropout), firstGlobalSample: 0)
    func objective() -> Double {
      attentionForward(out.pointer, att.pointer, qkv.pointer, scratch.pointer, dropout, layer: 0, B, T, C, NH, .serial)
      return weightedSum(out.pointer, dout.pointer, B * T * C)
    }
    _ = objective()
    if dropoutProbability == 0 {
      // The naive definition, row by row in Double, as the reference for the blocked kernel.
      let HS = C / NH
      var worst = 0.0
      for h in 0..<NH {
        for i in 0..<T {
          let q = qkv.pointer + i * 3 * C + h * HS
          var scores = (0...i).map { j in
            (0..<HS).reduce(0.0) { $0 + Double(q[$1]) * Double(qkv.pointer[j * 3 * C + C + h * HS + $1]) } / Double(HS).squareRoot()
          }
          let top = scores.max()!
          scores = scores.map { Foundation.exp($0 - top) }
          let total = scores.reduce(0, +)
          for c in 0..<HS {
            let expected = (0...i).reduce(0.0) { $0 + scores[$1] / total * Double(qkv.pointer[$1 * 3 * C + 2 * C + h * HS + c]) }
            worst = max(worst, abs(expected - Double(out.pointer[i * C + h * HS + c])))
          }
        }
      }
      #expect(worst < 1e-5, "blocked attention vs naive: \(worst)")
    }
    let dqkv = FloatBuffer(count: B * T * 3 * C)
    attentionBackward(
      dqkv.pointer, dout.pointer, qkv.pointer, att.pointer, scratch.pointer, scratch2.pointer, dropout,
      layer: 0, B, T, C, NH, .serial)
    expectGradientMatches("qkv", analytic: dqkv.pointer, x: qkv.pointer, count: B * T * 3 * C, objective: objective)
  }

  @Test func attentionIsCausal() {
    // Changing a later token's q, k or v must not change an earlier position's output.
    let (B, T, C, NH) = (1, 6, 4, 2)
    let qkv = randomBuffer(T * 3 * C, seed: 13)
    let (out, att, scratch) = (FloatBuffer(count: T * C), FloatBuffer(count: NH * T * T), FloatBuffer(count: attentionScratchPerThread(blockSize: T, headSize: C / NH)))
    attentionForward(out.pointer, att.pointer, qkv.pointer, scratch.pointer, .off, layer: 0, B, T, C, NH, .serial)
    let before = Array(UnsafeBufferPointer(start: out.pointer, count: 3 * C))
    for i in (3 * 3 * C)..<(T * 3 * C) { qkv.pointer[i] += 1 }
    attentionForward(out.pointer, att.pointer, qkv.pointer, scratch.pointer, .off, layer: 0, B, T, C, NH, .serial)
    #expect(Array(UnsafeBufferPointer(start: out.pointer, count: 3 * C)) == before)
  }

  @Test func rotary() {
    let (B, T, C, NH) = (2, 5, 8, 2)
    let HS = C / NH
    let (cosTable, sinTable) = (FloatBuffer(count: T * HS / 2), FloatBuffer(count: T * HS / 2))
    fillRotaryTables(cosTable.pointer, sinTable.pointer, T, HS)
    let x = randomBuffer(B * T * 3 * C, seed: 14)
    let y = FloatBuffer(count: B * T * 3 * C)
    let dout = randomBuffer(B * T * 3 * C, seed: 15)
    func objective() -> Double {
      y.copy(from: x)
      rotaryInPlace(y.pointer, cosTable.pointer, sinTable.pointer, direction: 1, B, T, C, NH)
      return weightedSum(y.pointer, dout.pointer, B * T * 3 * C)
    }
    let dx = FloatBuffer(count: B * T * 3 * C)
    dx.copy(from: dout)
    rotaryInPlace(dx.pointer, cosTable.pointer, sinTable.pointer, direction: -1, B, T, C, NH)
    expectGradientMatches("qkv", analytic: dx.pointer, x: x.pointer, count: B * T * 3 * C, objective: objective)
  }

  @Test func crossEntropy() {
    let (N, V) = (6, 11)
    let logits = randomBuffer(N * V, seed: 16, scale: 4)
    let work = FloatBuffer(count: N * V)
    let targets: [Int32] = [0, 3, 10, 5, 5, 1]
    let (losses, lse) = (FloatBuffer(count: N), FloatBuffer(count: N))
    let weights = randomBuffer(N, seed: 17, scale: 0.5, offset: 1)
    func objective() -> Double {
      crossEntropyForward(losses.pointer, lse.pointer, logits.pointer, targets, N, V, .serial)
      return weightedSum(losses.pointer, weights.pointer, N)
    }
    _ = objective()
    // The kernel takes one scale for all rows; weight rows one at a time to check each.
    let dlogits = FloatBuffer(count: N * V)
    for n in 0..<N {
      work.copy(from: logits)
      crossEntropyBackwardInPlace(work.pointer + n * V, lse.pointer + n, targets.withUnsafeBufferPointer { $0.baseAddress! + n }, scale: weights.pointer[n], 1, V, .serial)
      (dlogits.pointer + n * V).update(from: work.pointer + n * V, count: V)
    }
    expectGradientMatches("logits", analytic: dlogits.pointer, x: logits.pointer, count: N * V, objective: objective)
  }

  @Test func crossEntropyIsStableForHugeLogits() {
    let V = 4
    let logits: [Float] = [1e4, -1e4, 0, 1e4 - 1]
    let (losses, lse) = (FloatBuffer(count: 1), FloatBuffer(count: 1))
    crossEntropyForward(losses.pointer, lse.pointer, logits, [Int32(3)], 1, V, .serial)
    // log(1 + e^-1) + 1: finite although e^(1e4) overflows Float.
    #expect(abs(losses.pointer[0] - 1.313_261_7) < 1e-3)
  }

  @Test func embedding() {
    let (B, T, C, V) = (2, 4, 5, 7)
    let tokens: [Int32] = [1, 6, 1, 0, 3, 3, 2, 6]
    let wte = randomBuffer(V * C, seed: 18)
    let wpe = randomBuffer(T * C, seed: 19)
    let out = FloatBuffer(count: B * T * C)
    let dout = randomBuffer(B * T * C, seed: 20)
    func objective() -> Double {
      embeddingForward(out.pointer, tokens, wte.pointer, wpe.pointer, B, T, C)
      return weightedSum(out.pointer, dout.pointer, B * T * C)
    }
    let (dwte, dwpe) = (FloatBuffer(count: V * C), FloatBuffer(count: T * C))
    embeddingBackward(dwte.pointer, dwpe.pointer, dout.pointer, tokens, B, T, C)
    expectGradientMatches("wte", analytic: dwte.pointer, x: wte.pointer, count: V * C, objective: objective)
    expectGradientMatches("wpe", analytic: dwpe.pointer, x: wpe.pointer, count: T * C, objective: objective)
  }

  @Test func dropoutMaskIsItsOwnBackward() {
    let (B, N) = (3, 50)
    let context = DropoutContext(probability: 0.4, stepKey: RandomKey(seed: 1, purpose: .dropout), firstGlobalSample: 0)
    let x = randomBuffer(B * N, seed: 21, offset: 3)  // all positive, so zeros are exactly the dropped ones
    let original = Array(x.buffer)
    dropoutInPlace(x.pointer, B, N, context, layer: 0, site: .mlpOutput)
    let dropped = x.buffer.filter { $0 == 0 }.count
    // 150 draws at p = 0.4: expected 60 dropped, standard deviation 6; 30...90 is five sigma.
    #expect((30...90).contains(dropped))
    for i in 0..<(B * N) where x.pointer[i] != 0 {
      #expect(abs(x.pointer[i] - original[i] / 0.6) < 1e-5)
    }
    // The mask of sample b depends on its global index, not on its position in this batch.
    let shifted = DropoutContext(probability: 0.4, stepKey: context.stepKey, firstGlobalSample: 1)
    let y = FloatBuffer(count: N)
    y.pointer.update(from: original.withUnsafeBufferPointer { $0.baseAddress! + N }, count: N)
    dropoutInPlace(y.pointer, 1, N, shifted, layer: 0, site: .mlpOutput)
    #expect(Array(y.buffer) == Array(x.buffer[N..<(2 * N)]))
  }
}
