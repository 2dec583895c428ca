// One flat buffer holds every parameter, and one every gradient; this table names the slices.
// Layers are contiguous and in order, so the gradients of layer l are one range (buckets of the
// data-parallel reduction are runs of tensors) and the optimizer, clipping and checkpoint see a
// single buffer.

public struct ParameterTensor: Equatable, Sendable {
  public enum Kind: Sendable {
    case embedding  // wte, wpe, untied lm_head: weight decay is a config choice
    case matrix  // linear weights: always decayed
    case vector  // biases and LayerNorm: never decayed
  }

  public let name: String
  public let shape: [Int]
  public let offset: Int
  public let kind: Kind
  public var count: Int { shape.reduce(1, *) }
  public var range: Range<Int> { offset..<(offset + count) }
}

public struct ParameterLayout: Sendable {
  public let tensors: [ParameterTensor]
  public let count: Int
  /// The parameter range of each block (all twelve of its tensors).
  public let layerRanges: [Range<Int>]
  private let index: [String: Int]

  public init(_ shape: ModelShape) {
    let (V, C, L) = (shape.vocabSize, shape.channels, shape.layers)
    var tensors: [ParameterTensor] = []
    var offset = 0
    func add(_ name: String, _ dims: [Int], _ kind: ParameterTensor.Kind) {
      tensors.append(ParameterTensor(name: name, shape: dims, offset: offset, kind: kind))
      offset += dims.reduce(1, *)
    }
    add("wte", [V, C], .embedding)
    if shape.positionEncoding == .learned { add("wpe", [shape.blockSize, C], .embedding) }
    for l in 0..<L {
      add("h.\(l).ln1.weight", [C], .vector)
      add("h.\(l).ln1.bias", [C], .vector)
      add("h.\(l).attn.qkv.weight", [3 * C, C], .matrix)
      add("h.\(l).attn.qkv.bias", [3 * C], .vector)
      add("h.\(l).attn.proj.weight", [C, C], .matrix)
      add("h.\(l).attn.proj.bias", [C], .vector)
      add("h.\(l).ln2.weight", [C], .vector)
      add("h.\(l).ln2.bias", [C], .vector)
      add("h.\(l).mlp.fc.weight", [4 * C, C], .matrix)
      add("h.\(l).mlp.fc.bias", [4 * C], .vector)
      add("h.\(l).mlp.proj.weight", [C, 4 * C], .matrix)
      add("h.\(l).mlp.proj.bias", [C], .vector)
    }
    add("ln_f.weight", [C], .vector)
    add("ln_f.bias", [C], .vector)
    switch shape.task {
    case .languageModel, .maskedLanguageModel:
      if !shape.tieEmbeddings { add("lm_head.weight", [V, C], .embedding) }
    case .classifier(let head):
      // Last in the buffer, so their gradients are final first, with ln_f's.
      if head.hidden > 0 {
        add("classifier.hidden.weight", [head.hidden, C], .matrix)
        add("classifier.hidden.bias", [head.hidden], .vector)
      }
      add("classifier.out.weight", [head.classes, head.hidden > 0 ? head.hidden : C], .matrix)
      add("classifier.out.bias", [head.classes], .vector)
    }
    self.tensors = tensors
    self.count = offset
    // By the index, not by searching the list: a search per layer is quadratic in the depth (4096
    // layers took half a minute).
    let index = Dictionary(uniqueKeysWithValues: tensors.enumerated().map { ($1.name, $0) })
    layerRanges = (0..<L).map { l in
      let first = tensors[index["h.\(l).ln1.weight"]!]
      let last = tensors[index["h.\(l).mlp.proj.bias"]!]
      return first.offset..<last.range.upperBound
    }
    self.index = index
  }

  public subscript(name: String) -> ParameterTensor? { index[name].map { tensors[$0] } }

}
