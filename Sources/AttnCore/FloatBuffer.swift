// One owned, 64-byte aligned block of Floats. Kernels take its `pointer`; the model and optimizers
// allocate every buffer once, while being built, and never inside a training step.

public final class FloatBuffer: @unchecked Sendable {
  public let count: Int
  public let pointer: UnsafeMutablePointer<Float>

  public init(count: Int) {
    precondition(count >= 0, "negative buffer size")
    self.count = count
    let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
    pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
    pointer.initialize(repeating: 0, count: max(count, 1))
  }

  deinit { pointer.deallocate() }

  public var buffer: UnsafeMutableBufferPointer<Float> { .init(start: pointer, count: count) }

  public func zero() { pointer.update(repeating: 0, count: count) }

  public func copy(from other: FloatBuffer) {
    precondition(other.count == count, "buffer size mismatch")
    pointer.update(from: other.pointer, count: count)
  }
}
