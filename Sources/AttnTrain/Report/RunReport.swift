// `attn-train report RUN_DIR`: one self-contained HTML file (inline CSS and SVG, no script, no
// network, no fonts to fetch) that shows a run: loss against step and tokens, dev metrics, learning
// rate, gradient norm, throughput and MFU, memory against the plan, the per-layer profile when one
// was taken, the checkpoints and the resolved config. Rank 0 writes it at the end of every run.

import AttnFormats
import Foundation

public enum RunReport {
  /// Writes the report of the run in `run` to `output` (default: report.html in the run directory),
  /// durably and atomically, and returns its path and the ids of the plots it holds.
  @discardableResult
  public static func write(run: RunDirectory, to output: String? = nil) throws -> (path: String, plots: [String]) {
    let records = try RunRecords(run: run)
    let (html, plots) = page(records)
    let path = output ?? run.reportFile
    do {
      try writeFileDurably(path: path, contents: Data(html.utf8))
    } catch {
      throw InputError(file: path, problem: "cannot write the report: \(error)")
    }
    return (path, plots)
  }

  static func page(_ records: RunRecords) -> (html: String, plots: [String]) {
    let plots = self.plots(records).filter { !$0.isEmpty }
    var body = "<h1>attn-train run <code>\(SVGText.escape(records.run.path))</code></h1>\n"
    body += summary(records)
    if records.metrics.isEmpty {
      body += "<p class=\"note\">metrics.jsonl holds no records yet: the run has not logged a step.</p>\n"
    }
    if records.unreadableLines > 0 {
      body += "<p class=\"note\">\(records.unreadableLines) line(s) of metrics.jsonl could not be read (a run cut off mid-write) and are left out.</p>\n"
    }
    body += "<section class=\"plots\">\n" + plots.map(\.svg).joined(separator: "\n") + "\n"
    let profile = profileChart(records)
    if let profile { body += profile.svg + "\n" }
    body += "</section>\n"
    body += checkpointTable(records)
    if let text = records.configText {
      body += "<h2>Resolved config</h2>\n<pre>\(SVGText.escape(text))</pre>\n"
    }
    let html = """
      <!DOCTYPE html>
      <html lang="en">
      <head>
      <meta charset="utf-8">
      <title>attn-train: \(SVGText.escape((records.run.path as NSString).lastPathComponent))</title>
      <style>
      body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #222; max-width: 1340px; }
      h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; }
      table { border-collapse: collapse; font-size: 13px; }
      td, th { border-bottom: 1px solid #ddd; padding: 3px 10px; text-align: left; }
      td.n { text-align: right; font-variant-numeric: tabular-nums; }
      .plots { display: flex; flex-wrap: wrap; gap: 12px; }
      svg.plot { background: #fff; border: 1px solid #e3e3e3; }
      svg .title { font-size: 14px; font-weight: 600; }
      svg .tick, svg .legend { font-size: 11px; fill: #444; }
      svg .label { font-size: 12px; fill: #222; }
      svg .grid { stroke: #eee; }
      svg .frame { fill: none; stroke: #999; }
      svg .level { stroke: #c00; stroke-dasharray: 5 4; }
      svg path.series { fill: none; stroke-width: 1.8; stroke-linejoin: round; }
      pre { background: #f6f6f6; padding: 10px; font-size: 12px; overflow-x: auto; }
      .note { color: #8a5a00; }
      </style>
      </head>
      <body>
      \(body)</body>
      </html>

      """
    return (html, plots.map(\.id) + (profile.map { [$0.id] } ?? []))
  }

  private static let blue = "#1f77b4", orange = "#ff7f0e", green = "#2ca02c", purple = "#9467bd", grey = "#555"

  private static func plots(_ r: RunRecords) -> [LinePlot] {
    var plots = [
      LinePlot(
        id: "loss-by-step", title: "Loss by step", xLabel: "step", yLabel: "loss",
        series: [
          PlotSeries(name: "train loss", points: r.points("train_loss"), color: blue),
          PlotSeries(name: "dev loss", points: r.points("dev_loss"), color: orange, marked: true),
        ]),
      LinePlot(
        id: "loss-by-tokens", title: "Loss by tokens", xLabel: "tokens", yLabel: "loss",
        series: [
          PlotSeries(name: "train loss", points: r.points("train_loss", against: "tokens"), color: blue),
          PlotSeries(name: "dev loss", points: r.points("dev_loss", against: "tokens"), color: orange, marked: true),
        ]),
    ]
    for x in ["step", "tokens"] {
      plots.append(
        LinePlot(
          id: "dev-metrics-by-\(x)", title: "Dev accuracy by \(x)", xLabel: x, yLabel: "fraction",
          series: [
            PlotSeries(name: "dev accuracy", points: r.points("dev_accuracy", against: x), color: green, marked: true),
            PlotSeries(name: "dev macro-F1", points: r.points("dev_macro_f1", against: x), color: purple, marked: true),
          ]))
    }
    plots += [
      LinePlot(
        id: "learning-rate", title: "Learning rate", xLabel: "step", yLabel: "learning rate",
        series: [PlotSeries(name: "lr", points: r.points("lr"), color: blue)]),
      LinePlot(
        id: "gradient-norm", title: "Gradient norm before clipping", xLabel: "step", yLabel: "norm",
        series: [PlotSeries(name: "grad norm", points: r.points("grad_norm"), color: blue)]),
      LinePlot(
        id: "throughput", title: "Throughput", xLabel: "step", yLabel: "tokens/s (all ranks)",
        series: [PlotSeries(name: "tokens/s", points: r.points("tokens_per_s"), color: blue)]),
      LinePlot(
        id: "mfu", title: "Model FLOPs utilisation (measured peak)", xLabel: "step", yLabel: "MFU",
        series: [PlotSeries(name: "MFU", points: r.points("mfu"), color: green)],
        format: { String(format: "%.0f%%", $0 * 100) }),
      memoryPlot(r),
    ]
    return plots
  }

  private static func memoryPlot(_ r: RunRecords) -> LinePlot {
    let plan = r.plan?["memory_plan_bytes"]?.doubleValue.map { $0 / 1_048_576 }
    return LinePlot(
      id: "memory", title: "Resident memory of rank 0", xLabel: "step", yLabel: "MiB",
      series: [PlotSeries(name: "resident", points: r.points("rss_mib"), color: grey)],
      levels: plan.map { [PlotLevel(name: String(format: "plan %.1f MiB", $0), y: $0)] } ?? [])
  }

  private static func profileChart(_ r: RunRecords) -> BarChart? {
    guard let profile = r.profile, let sections = profile["sections"], case .array(let items) = sections else { return nil }
    let steps = profile["steps"]?.doubleValue ?? 1
    let rows: [(label: String, parts: [Double])] = items.compactMap { item in
      guard let object = try? JSONObject(item), case .string(let name)? = object["name"],
        let forward = object["forward_s"]?.doubleValue, let backward = object["backward_s"]?.doubleValue
      else { return nil }
      return (label: name, parts: [forward, backward].map { $0 / max(steps, 1) * 1000 })
    }
    guard !rows.isEmpty else { return nil }
    return BarChart(
      id: "profile", title: "Time per step by layer (profiled over \(Int(steps)) steps)", rows: rows,
      partNames: ["forward", "backward"], colors: [blue, orange], unit: "ms")
  }

  private static func summary(_ r: RunRecords) -> String {
    var rows: [(String, String)] = []
    if let config = r.config { rows.append(("config", config.summary)) }
    if let plan = r.plan {
      if let parameters = plan["parameters"]?.exactInt { rows.append(("parameters", parameters.formatted())) }
      if let ranks = plan["ranks"]?.exactInt, let threads = plan["threads_per_rank"]?.exactInt {
        rows.append(("ranks", "\(ranks) × \(threads) thread\(threads == 1 ? "" : "s")"))
      }
      if let tokens = plan["tokens_per_step"]?.exactInt { rows.append(("tokens per step", tokens.formatted())) }
      if let peak = plan["peak_flops"]?.doubleValue {
        rows.append(("peak (measured)", String(format: "%.1f GFLOP/s", peak / 1e9)))
      }
    }
    if let last = r.metrics.last {
      let maxSteps = r.plan?["max_steps"]?.exactInt.map { " of \($0)" } ?? ""
      rows.append(("steps", "\(Int(last["step"] ?? 0))\(maxSteps)"))
      if let tokens = r.metrics.last(where: { $0["tokens"] != nil })?["tokens"] { rows.append(("tokens seen", Int(tokens).formatted())) }
      if let elapsed = last["elapsed_s"] { rows.append(("training time", String(format: "%.1f s", elapsed))) }
      if let loss = last["train_loss"] { rows.append(("last train loss", String(format: "%.4f", loss))) }
    }
    if let dev = r.metrics.last(where: { $0["dev_loss"] != nil }) {
      var text = String(format: "%.4f at step %d", dev["dev_loss"]!, Int(dev["step"] ?? 0))
      if let accuracy = dev["dev_accuracy"] { text += String(format: ", accuracy %.4f", accuracy) }
      if let f1 = dev["dev_macro_f1"] { text += String(format: ", macro-F1 %.4f", f1) }
      rows.append(("last dev loss", text))
    }
    if let mfu = r.metrics.compactMap({ $0["mfu"] }).last {
      rows.append(("last MFU", String(format: "%.1f%%", mfu * 100)))
    }
    let cells = rows.map { "<tr><th>\(SVGText.escape($0.0))</th><td>\(SVGText.escape($0.1))</td></tr>" }
    return "<table class=\"summary\">\n" + cells.joined(separator: "\n") + "\n</table>\n"
  }

  private static func checkpointTable(_ r: RunRecords) -> String {
    guard !r.checkpoints.isEmpty else { return "<h2>Checkpoints</h2>\n<p>none</p>\n" }
    var out = "<h2>Checkpoints</h2>\n<table class=\"checkpoints\">\n"
    out += "<tr><th>name</th><th>step</th><th>tokens seen</th><th>training time</th><th>best dev figure so far</th><th>size</th><th></th></tr>\n"
    for checkpoint in r.checkpoints {
      let state = checkpoint.state
      let best = state?.bestDevSummary ?? "–"
      let cells = [
        SVGText.escape(checkpoint.name), state.map { "\($0.step)" } ?? "?", state.map { $0.tokensSeen.formatted() } ?? "?",
        state.map { String(format: "%.1f s", $0.elapsedSeconds) } ?? "?", best,
        String(format: "%.1f MiB", Double(checkpoint.bytes) / 1_048_576),
        checkpoint.isLatest ? "latest" : SVGText.escape(checkpoint.problem ?? ""),
      ]
      out += "<tr>" + cells.enumerated().map { i, cell in (1...3).contains(i) || i == 5 ? "<td class=\"n\">\(cell)</td>" : "<td>\(cell)</td>" }.joined() + "</tr>\n"
    }
    return out + "</table>\n<p>Checksums are verified by <code>attn-train inspect</code>.</p>\n"
  }
}
