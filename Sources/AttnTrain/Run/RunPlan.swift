// plan.json: what a run is sized to, written at each start for whoever reads the run afterwards
// (`attn-train report`): the memory plan, the model's FLOPs per token and the peak MFU divides by.
// profile.json: where a --profile run's step time went, by kind of layer.

import AttnCore
import AttnFormats

struct RunPlan {
  let json: JSONValue

  init(config: Config, plan: BatchPlan, model: GPT, memory: MemoryPlan, peak: MachinePeak?) {
    var members: [(key: String, value: JSONValue)] = [
      (key: "task", value: .string(config.task.kind.rawValue)),
      (key: "parameters", value: JSONValue(integer: model.parameters.count)),
      (key: "memory_plan_bytes", value: JSONValue(integer: memory.totalBytes)),
      (key: "flops_per_token", value: JSONValue(number: model.shape.trainingFLOPsPerToken)),
      (key: "ranks", value: JSONValue(integer: plan.ranks)),
      (key: "threads_per_rank", value: JSONValue(integer: ComputeThreads.current)),
      (key: "tokens_per_step", value: JSONValue(integer: plan.tokensPerStep)),
      (key: "max_steps", value: JSONValue(integer: config.training.maxSteps)),
    ]
    if let peak {
      members.append((key: "peak_flops", value: JSONValue(number: peak.flopsPerSecond)))
      members.append((key: "peak_flops_per_core", value: JSONValue(number: peak.perCore)))
      members.append((key: "peak_cores", value: JSONValue(integer: peak.cores)))
    }
    json = .object(members)
  }
}

enum RunProfile {
  static func json(steps: Int) -> JSONValue {
    .object([
      (key: "steps", value: JSONValue(integer: steps)),
      (
        key: "sections",
        value: .array(
          Profiler.report().map {
            .object([
              (key: "name", value: .string("\($0.section)")), (key: "forward_s", value: JSONValue(number: $0.forward)),
              (key: "backward_s", value: JSONValue(number: $0.backward)),
            ])
          })
      ),
    ])
  }
}
