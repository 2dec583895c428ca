// Seeing a run as a user would: the report a run writes is opened in a real browser (Debian's
// headless Chromium), which must find every plot with a drawn series, log no console error, and
// paint each series' colour; `inspect` shows a checkpoint's tensors and verdict, and names the file
// and the fault of a damaged one.

import AttnFormats
import Foundation
import TestProcesses
import Testing

@Suite struct ReportTests {
  static let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) }

  /// A short language-model run with dev evaluations, checkpoints and a profile.
  private func trainedRun(_ label: String) throws -> (directory: URL, run: String, output: String) {
    let directory = try Harness.temporaryDirectory(label)
    let run = directory.appendingPathComponent("run").path
    let config = try Harness.writeConfig(
      in: directory, ["training": ["max_steps": 40, "eval_interval": 10, "log_interval": 2, "checkpoint_interval": 20]])
    let trained = try Harness.attnTrain([config, "--profile"], timeout: 300)
    #expect(trained.status == 0, "\(trained.output)")
    return (directory, run, trained.stdout)
  }

  @Test func theReportOfARunRendersInChromiumWithEveryPlotDrawn() throws {
    let chromium = try #require(Self.chromium, "Chromium is not installed: run launch/setup.sh --python")
    let (directory, run, output) = try trainedRun("report")
    let report = (run as NSString).appendingPathComponent("report.html")
    #expect(output.contains("report: \(report)"), "\(output)")
    let html = try String(contentsOfFile: report, encoding: .utf8)
    // Self-contained: nothing to fetch (the SVG namespace is a name, not a request).
    let fetched = html.replacingOccurrences(of: "http://www.w3.org/2000/svg", with: "")
    #expect(!fetched.contains("http://") && !fetched.contains("https://") && !html.contains("<script"), "the report refers outside itself")

    // `report` redoes it anywhere, for any run directory.
    let elsewhere = directory.appendingPathComponent("copy.html").path
    let redone = try Harness.attnTrain(["report", run, "--output", elsewhere])
    #expect(redone.status == 0, "\(redone.output)")
    #expect(try String(contentsOfFile: elsewhere, encoding: .utf8) == html)

    let profile = ["--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=\(directory.appendingPathComponent("chromium").path)"]
    let dom = try Harness.run(chromium, profile + ["--enable-logging=stderr", "--v=0", "--dump-dom", "file://\(report)"], timeout: 120)
    #expect(dom.status == 0, "\(dom.stderr)")
    let consoleErrors = dom.stderr.split(separator: "\n").filter {
      $0.contains("CONSOLE") || $0.contains("Uncaught") || $0.contains("ERR_FILE_NOT_FOUND") || $0.contains("Failed to load")
    }
    #expect(consoleErrors.isEmpty, "\(consoleErrors)")
    // Every plot, and in each every series a path of the run's points, as the browser parsed them.
    let expected: [(plot: String, series: [String])] = [
      ("loss-by-step", ["train loss", "dev loss"]), ("loss-by-tokens", ["train loss", "dev loss"]), ("learning-rate", ["lr"]),
      ("gradient-norm", ["grad norm"]), ("throughput", ["tokens/s"]), ("mfu", ["MFU"]), ("memory", ["resident"]),
    ]
    let records = try Harness.metrics(runDirectory: run)
    for (plot, series) in expected {
      let svg = try #require(Self.element("svg", id: plot, in: dom.stdout), "no plot \(plot) in the rendered page")
      for name in series {
        let d = try #require(Self.attribute("d", ofPathNamed: name, in: svg), "plot \(plot) has no series \(name)")
        let points = d.filter { $0 == "M" || $0 == "L" }.count
        let key = ["train loss": "train_loss", "dev loss": "dev_loss", "lr": "lr", "grad norm": "grad_norm", "tokens/s": "tokens_per_s", "MFU": "mfu", "resident": "rss_mib"][name]!
        #expect(points == records.filter { $0[key] != nil }.count, "plot \(plot), series \(name): \(points) points")
      }
    }
    let bars = try #require(Self.element("svg", id: "profile", in: dom.stdout), "no profile chart")
    #expect(bars.components(separatedBy: "class=\"bar\"").count > 10, "the profile chart has too few bars")
    #expect(dom.stdout.contains("step-0000040") && dom.stdout.contains("Resolved config"))

    // Painted: the screenshot holds each series' colour (blue train loss, orange dev loss, green MFU).
    let screenshot = directory.appendingPathComponent("report.png").path
    let shot = try Harness.run(chromium, profile + ["--screenshot=\(screenshot)", "--window-size=1340,2400", "file://\(report)"], timeout: 120)
    #expect(shot.status == 0, "\(shot.stderr)")
    let counts = try python3(
      """
      import sys
      from PIL import Image
      image = Image.open(sys.argv[1]).convert("RGB")
      colours = {"blue": (0x1f, 0x77, 0xb4), "orange": (0xff, 0x7f, 0x0e), "green": (0x2c, 0xa0, 0x2c)}
      counts = {name: 0 for name in colours}
      for pixel in image.getdata():
          for name, c in colours.items():
              if all(abs(a - b) <= 24 for a, b in zip(pixel, c)):
                  counts[name] += 1
      print(" ".join(f"{name}={n}" for name, n in counts.items()))
      """, [screenshot], timeout: 120)
    for colour in ["blue", "orange", "green"] {
      let count = counts.split(whereSeparator: \.isWhitespace).first { $0.hasPrefix(colour + "=") }.flatMap { Int($0.split(separator: "=")[1]) } ?? 0
      #expect(count > 200, "\(colour) is hardly painted: \(counts)")
    }
  }

  @Test func inspectShowsTheTensorsAndNamesTheDamagedFileAndFault() throws {
    let (directory, run, _) = try trainedRun("inspect")
    let checkpoint = (run as NSString).appendingPathComponent("checkpoints/step-0000040")
    let shown = try Harness.attnTrain(["inspect", run])
    #expect(shown.status == 0, "\(shown.output)")
    for text in ["step-0000020 (step 20): ok", "best (step 40): ok", "step 40, tokens seen", "h.1.mlp.fc.weight", "verified"] {
      #expect(shown.stdout.contains(text), "missing \(text) in\n\(shown.stdout)")
    }
    let json = try Harness.attnTrain(["inspect", checkpoint, "--json"])
    #expect(json.status == 0, "\(json.output)")
    let object = try JSONObject(JSONValue.parse(Data(json.stdout.utf8)))
    #expect(try object.value("valid") == .bool(true))
    let plan = try JSONObject(JSONValue.parse(Data(contentsOf: URL(fileURLWithPath: (run as NSString).appendingPathComponent("plan.json")))))
    #expect(try object.int("parameters") == plan.int("parameters"))
    #expect(try object.object("trainer").int("step") == 40)
    // The dev loss the run logged at that step, from the run directory's metrics.jsonl.
    let logged = try #require(try Harness.metrics(runDirectory: run).last { $0["step"] == 40 }?["dev_loss"])
    #expect(try object.object("dev").double("dev_loss") == logged)

    // A flipped byte in the optimizer state: the file, the fault, status 1, and the rest still shown.
    let damaged = directory.appendingPathComponent("damaged").path
    try FileManager.default.copyItem(atPath: checkpoint, toPath: damaged)
    let optimizer = (damaged as NSString).appendingPathComponent("optimizer.safetensors")
    var bytes = try Data(contentsOf: URL(fileURLWithPath: optimizer))
    bytes[bytes.count - 10] ^= 0x40
    try bytes.write(to: URL(fileURLWithPath: optimizer))
    let flipped = try Harness.attnTrain(["inspect", damaged])
    #expect(flipped.status == 1)
    #expect(flipped.stderr.contains("\(optimizer): checksum mismatch"), "\(flipped.stderr)")
    #expect(flipped.stdout.contains("optimizer.safetensors DAMAGED") && flipped.stdout.contains("wte"), "\(flipped.stdout)")

    // A NaN written into a weight with the manifest made to match: checksums verify, the values do not.
    let poisoned = directory.appendingPathComponent("poisoned").path
    try FileManager.default.copyItem(atPath: checkpoint, toPath: poisoned)
    let model = (poisoned as NSString).appendingPathComponent("model.safetensors")
    var weights = try Data(contentsOf: URL(fileURLWithPath: model))
    let headerLength = weights.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
    let nan = withUnsafeBytes(of: Float.nan.bitPattern.littleEndian) { Data($0) }
    weights.replaceSubrange((8 + headerLength)..<(8 + headerLength + 4), with: nan)  // the first tensor's first value
    try weights.write(to: URL(fileURLWithPath: model))
    let manifestPath = (poisoned as NSString).appendingPathComponent("manifest.json")
    let oldDigest = try JSONObject(JSONValue.parse(Data(contentsOf: URL(fileURLWithPath: manifestPath)))).object("sha256").string("model.safetensors")
    let manifest = try String(contentsOfFile: manifestPath, encoding: .utf8)
      .replacingOccurrences(of: oldDigest, with: try SHA256.hexDigest(ofFile: model))
    try manifest.write(toFile: manifestPath, atomically: true, encoding: .utf8)
    let nanJSON = try Harness.attnTrain(["inspect", poisoned, "--json"])
    #expect(nanJSON.status == 1)
    #expect(nanJSON.stderr.contains("\(model): tensor") && nanJSON.stderr.contains("NaN or infinite"), "\(nanJSON.stderr)")
    let verdict = try JSONObject(JSONValue.parse(Data(nanJSON.stdout.utf8)))
    #expect(try verdict.value("valid") == .bool(false))

    let missing = try Harness.attnTrain(["inspect", directory.appendingPathComponent("nothing").path])
    #expect(missing.status == 1 && missing.stderr.contains("nothing: no such file or directory"), "\(missing.output)")
  }

  /// The text of the first `<tag ... id="id" ...>...</tag>` in `html`.
  static func element(_ tag: String, id: String, in html: String) -> String? {
    guard let start = html.range(of: "<\(tag) [^>]*id=\"\(id)\"", options: .regularExpression),
      let end = html.range(of: "</\(tag)>", range: start.upperBound..<html.endIndex)
    else { return nil }
    return String(html[start.lowerBound..<end.upperBound])
  }

  /// The d attribute of the series path named `name` in `svg`.
  static func attribute(_ attribute: String, ofPathNamed name: String, in svg: String) -> String? {
    for path in svg.components(separatedBy: "<path").dropFirst() {
      let tag = path.prefix { $0 != ">" }
      guard tag.contains("data-series=\"\(name)\""), let range = tag.range(of: "\(attribute)=\"") else { continue }
      return String(tag[range.upperBound...].prefix { $0 != "\"" })
    }
    return nil
  }
}
