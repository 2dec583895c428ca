// The linear layer's two paths (sgemm, and the weight packed into panels) against a naive Double
// product, at shapes that leave partial 6-row tiles and partial 8- and 16-column chunks, on one and
// on two threads. The panel path must also write nothing outside its result and give the same bits
// at every thread count. The fused epilogues (GELU's slope, a residual's sum) must give the bits of
// the separate passes.

@testable import AttnCore
import Testing

@Suite struct MatmulTests {
  struct Case: CustomTestStringConvertible, Sendable {
    let BT, C, OC: Int
    let packed, biased: Bool
    let threads: Int
    var testDescription: String {
      "BT\(BT) C\(C) OC\(OC) \(packed ? "panels" : "sgemm") \(biased ? "bias" : "no bias") \(threads)t"
    }
  }

  static let cases: [Case] = [(1, 1, 1), (37, 19, 65), (64, 64, 192), (13, 33, 17), (50, 24, 9)].flatMap { shape in
    [false, true].flatMap { packed in
      [false, true].flatMap { biased in
        [1, 2].map { Case(BT: shape.0, C: shape.1, OC: shape.2, packed: packed, biased: biased, threads: $0) }
      }
    }
  }

  /// Floats past each result that must keep this value.
  static let guardCount = 24
  static let sentinel: Float = -12345

  /// The operands of a case, the same every time they are made.
  struct Inputs {
    let inp, weight, bias, dout, dweight, dbias: FloatBuffer

    init(_ c: Case) {
      inp = randomBuffer(c.BT * c.C, seed: 11)
      weight = randomBuffer(c.OC * c.C, seed: 12)
      bias = randomBuffer(c.OC, seed: 13)
      dout = randomBuffer(c.BT * c.OC, seed: 14)
      dweight = randomBuffer(c.OC * c.C, seed: 15)  // accumulated into
      dbias = randomBuffer(c.OC, seed: 16)
    }
  }

  struct Results {
    let out, dinp, dweight, dbias: FloatBuffer
  }

  static func run(_ c: Case, pool: WorkerPool) -> Results {
    let (BT, C, OC) = (c.BT, c.C, c.OC)
    let x = Inputs(c)
    let panels = FloatBuffer(count: weightPanelFloats(outputs: OC, inputs: C)!)
    let out = FloatBuffer(count: BT * OC + guardCount)
    let dinp = FloatBuffer(count: BT * C + guardCount)
    out.pointer.update(repeating: sentinel, count: out.count)
    dinp.pointer.update(repeating: sentinel, count: dinp.count)
    let scratch = c.packed ? panels.pointer : nil
    matmulForward(out.pointer, x.inp.pointer, x.weight.pointer, c.biased ? x.bias.pointer : nil, BT, C, OC, pool, panels: scratch)
    matmulBackward(
      dinp.pointer, x.dweight.pointer, c.biased ? x.dbias.pointer : nil, x.dout.pointer, x.inp.pointer, x.weight.pointer,
      BT, C, OC, pool, panels: scratch)
    return Results(out: out, dinp: dinp, dweight: x.dweight, dbias: x.dbias)
  }

  @Test(arguments: cases)
  func matchesNaiveProduct(_ c: Case) {
    let (BT, C, OC) = (c.BT, c.C, c.OC)
    let pool = c.threads == 1 ? WorkerPool.serial : WorkerPool(threads: c.threads)
    let r = Self.run(c, pool: pool)
    let x = Inputs(c)  // fresh: run's dweight and dbias were accumulated into
    let (inp, weight, bias, dout, dweight0, dbias0) = (x.inp, x.weight, x.bias, x.dout, x.dweight, x.dbias)

    func expectClose(_ label: String, _ got: Float, _ want: Double, terms: Int) {
      // Each term is below 1 in magnitude; float32 sums of `terms` of them stay well inside this.
      let tolerance = 1e-6 * Double(terms + 1) + 1e-6 * abs(want)
      #expect(abs(Double(got) - want) <= tolerance, "\(label): \(got) against \(want)")
    }
    for t in 0..<BT {
      for o in 0..<OC {
        var sum = c.biased ? Double(bias.pointer[o]) : 0
        for k in 0..<C { sum += Double(inp.pointer[t * C + k]) * Double(weight.pointer[o * C + k]) }
        expectClose("out[\(t), \(o)]", r.out.pointer[t * OC + o], sum, terms: C)
      }
      for k in 0..<C {
        var sum = 0.0
        for o in 0..<OC { sum += Double(dout.pointer[t * OC + o]) * Double(weight.pointer[o * C + k]) }
        expectClose("dinp[\(t), \(k)]", r.dinp.pointer[t * C + k], sum, terms: OC)
      }
    }
    for o in 0..<OC {
      for k in 0..<C {
        var sum = Double(dweight0.pointer[o * C + k])
        for t in 0..<BT { sum += Double(dout.pointer[t * OC + o]) * Double(inp.pointer[t * C + k]) }
        expectClose("dweight[\(o), \(k)]", r.dweight.pointer[o * C + k], sum, terms: BT)
      }
      var sum = Double(dbias0.pointer[o])
      if c.biased { for t in 0..<BT { sum += Double(dout.pointer[t * OC + o]) } }
      expectClose("dbias[\(o)]", r.dbias.pointer[o], sum, terms: BT)
    }
    for i in 0..<Self.guardCount {
      #expect(r.out.pointer[BT * OC + i] == Self.sentinel, "out written past its end")
      #expect(r.dinp.pointer[BT * C + i] == Self.sentinel, "dinp written past its end")
    }
  }

  @Test(arguments: [(37, 19, 65), (64, 64, 192)])
  func panelsRepeatAtEveryThreadCount(_ shape: (Int, Int, Int)) {
    let one = Case(BT: shape.0, C: shape.1, OC: shape.2, packed: true, biased: true, threads: 1)
    let a = Self.run(one, pool: .serial)
    let b = Self.run(one, pool: WorkerPool(threads: 3))
    #expect(Array(a.out.buffer) == Array(b.out.buffer))
    #expect(Array(a.dinp.buffer) == Array(b.dinp.buffer))
  }

  /// With geluSlope, dinp is the plain input gradient times the slope, bit for bit, on either path,
  /// and nothing past it is written.
  @Test(arguments: [(37, 19, 65), (64, 64, 192)], [false, true])
  func inputGradientTimesGELUSlope(_ shape: (Int, Int, Int), packed: Bool) {
    let c = Case(BT: shape.0, C: shape.1, OC: shape.2, packed: packed, biased: false, threads: 2)
    let (BT, C, OC) = (c.BT, c.C, c.OC)
    let x = Inputs(c)
    let slope = randomBuffer(BT * C, seed: 17)
    let panels = FloatBuffer(count: weightPanelFloats(outputs: OC, inputs: C)!)
    let scratch = packed ? panels.pointer : nil
    let pool = WorkerPool(threads: 2)
    let plain = FloatBuffer(count: BT * C)
    let scaled = FloatBuffer(count: BT * C + Self.guardCount)
    scaled.pointer.update(repeating: Self.sentinel, count: scaled.count)
    matmulBackward(
      plain.pointer, x.dweight.pointer, nil, x.dout.pointer, x.inp.pointer, x.weight.pointer, BT, C, OC, pool,
      panels: scratch)
    matmulBackward(
      scaled.pointer, x.dweight.pointer, nil, x.dout.pointer, x.inp.pointer, x.weight.pointer, BT, C, OC, pool,
      panels: scratch, geluSlope: slope.pointer)
    let mismatches = (0..<BT * C).filter { scaled.pointer[$0] != plain.pointer[$0] * slope.pointer[$0] }
    let (count, first) = (mismatches.count, mismatches.first ?? 0)
    #expect(count == 0, "\(count) of \(BT * C) differ, the first at \(first)")
    #expect((0..<Self.guardCount).allSatisfy { scaled.pointer[BT * C + $0] == Self.sentinel }, "written past its end")
  }

  /// Adding a residual as the product stores gives the bits of the product followed by the sum, on
  /// either path and thread count, and nothing past the result is written.
  @Test(arguments: [(37, 19, 65), (64, 64, 192)], [false, true])
  func productAddedToResidual(_ shape: (Int, Int, Int), packed: Bool) {
    let (BT, C, OC) = shape
    let x = Inputs(Case(BT: BT, C: C, OC: OC, packed: packed, biased: true, threads: 1))
    let residual = randomBuffer(BT * OC, seed: 18)
    let panels = FloatBuffer(count: weightPanelFloats(outputs: OC, inputs: C)!)
    let scratch = packed ? panels.pointer : nil
    for pool in [WorkerPool.serial, WorkerPool(threads: 2)] {
      let branch = FloatBuffer(count: BT * OC)
      let separate = FloatBuffer(count: BT * OC)
      matmulForward(branch.pointer, x.inp.pointer, x.weight.pointer, x.bias.pointer, BT, C, OC, pool, panels: scratch)
      residualForward(separate.pointer, residual.pointer, branch.pointer, BT * OC, pool)
      let fused = FloatBuffer(count: BT * OC + Self.guardCount)
      fused.pointer.update(repeating: Self.sentinel, count: fused.count)
      matmulForward(
        fused.pointer, x.inp.pointer, x.weight.pointer, x.bias.pointer, adding: residual.pointer, BT, C, OC, pool,
        panels: scratch)
      let mismatches = (0..<BT * OC).filter { fused.pointer[$0] != separate.pointer[$0] }
      let (count, first) = (mismatches.count, mismatches.first ?? 0)
      #expect(count == 0, "\(pool.threads) threads: \(count) of \(BT * OC) differ, the first at \(first)")
      #expect((0..<Self.guardCount).allSatisfy { fused.pointer[BT * OC + $0] == Self.sentinel }, "written past its end")
    }
  }

  @Test func panelsOnlyForWeightsThatFit() {
    #expect(weightPanelFloats(outputs: 1024, inputs: 1024) == 1024 * 1024)
    #expect(weightPanelFloats(outputs: 65, inputs: 64) == 80 * 64)
    #expect(weightPanelFloats(outputs: 1025, inputs: 1024) == nil)
    #expect(weightPanelFloats(outputs: 50304, inputs: 768) == nil)
  }
}
