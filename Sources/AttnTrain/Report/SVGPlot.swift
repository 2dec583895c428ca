// Line plots and bar charts as inline SVG: the report must open anywhere, offline, so it draws its
// own axes instead of loading a plotting library. Each series is one <path class="series"> with a
// data-series name, which is what the browser test looks for.

import Foundation

struct PlotSeries {
  let name: String
  let points: [(x: Double, y: Double)]
  let color: String
  /// Dev figures are few and far between: marked at each point as well as joined.
  var marked = false
}

/// A horizontal reference line (the memory plan, say), labelled at its right end.
struct PlotLevel {
  let name: String
  let y: Double
}

struct LinePlot {
  let id: String
  let title: String
  let xLabel: String
  let yLabel: String
  let series: [PlotSeries]
  var levels: [PlotLevel] = []
  /// How tick values read: "%.3g" for most, a percentage for MFU.
  var format: (Double) -> String = { SVGText.number($0) }

  static let width = 600.0
  static let height = 280.0
  private static let left = 70.0, right = 20.0, top = 34.0, bottom = 46.0

  /// More points than a plot is pixels wide only make the file large (a million-step run logged
  /// every step would be megabytes per series): a longer series keeps every k-th point and its last.
  static let maximumPoints = 2000

  static func thinned(_ points: [(x: Double, y: Double)]) -> [(x: Double, y: Double)] {
    guard points.count > maximumPoints else { return points }
    let stride = (points.count + maximumPoints - 2) / (maximumPoints - 1)
    var kept = Swift.stride(from: 0, to: points.count - 1, by: stride).map { points[$0] }
    kept.append(points[points.count - 1])
    return kept
  }

  /// The finite points of every series; a plot with none is left out of the report.
  var isEmpty: Bool { series.allSatisfy { !$0.points.contains { $0.x.isFinite && $0.y.isFinite } } }

  var svg: String {
    let drawn = series.map {
      PlotSeries(name: $0.name, points: Self.thinned($0.points.filter { $0.x.isFinite && $0.y.isFinite }), color: $0.color, marked: $0.marked)
    }
    let xs = drawn.flatMap { $0.points.map(\.x) }
    let ys = drawn.flatMap { $0.points.map(\.y) } + levels.map(\.y)
    let xAxis = Axis(covering: xs), yAxis = Axis(covering: ys)
    let plotWidth = Self.width - Self.left - Self.right, plotHeight = Self.height - Self.top - Self.bottom
    func px(_ x: Double) -> Double { Self.left + xAxis.fraction(x) * plotWidth }
    func py(_ y: Double) -> Double { Self.top + (1 - yAxis.fraction(y)) * plotHeight }

    var out = """
      <svg class="plot" id="\(id)" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 \(Int(Self.width)) \(Int(Self.height))" \
      width="\(Int(Self.width))" height="\(Int(Self.height))" role="img" aria-label="\(SVGText.escape(title))">
      <title>\(SVGText.escape(title))</title>
      <text class="title" x="\(Self.left)" y="20">\(SVGText.escape(title))</text>

      """
    for tick in yAxis.ticks {
      let y = SVGText.coordinate(py(tick))
      out += "<line class=\"grid\" x1=\"\(Self.left)\" x2=\"\(Self.width - Self.right)\" y1=\"\(y)\" y2=\"\(y)\"/>"
      out += "<text class=\"tick\" x=\"\(Self.left - 6)\" y=\"\(y)\" text-anchor=\"end\" dominant-baseline=\"middle\">\(format(tick))</text>\n"
    }
    for tick in xAxis.ticks {
      let x = SVGText.coordinate(px(tick))
      out += "<line class=\"grid\" x1=\"\(x)\" x2=\"\(x)\" y1=\"\(Self.top)\" y2=\"\(Self.height - Self.bottom)\"/>"
      out += "<text class=\"tick\" x=\"\(x)\" y=\"\(Self.height - Self.bottom + 16)\" text-anchor=\"middle\">\(SVGText.number(tick))</text>\n"
    }
    out += "<rect class=\"frame\" x=\"\(Self.left)\" y=\"\(Self.top)\" width=\"\(plotWidth)\" height=\"\(plotHeight)\"/>\n"
    out += "<text class=\"label\" x=\"\(Self.left + plotWidth / 2)\" y=\"\(Self.height - 8)\" text-anchor=\"middle\">\(SVGText.escape(xLabel))</text>\n"
    out += "<text class=\"label\" transform=\"translate(14 \(Self.top + plotHeight / 2)) rotate(-90)\" text-anchor=\"middle\">\(SVGText.escape(yLabel))</text>\n"
    for level in levels {
      let y = SVGText.coordinate(py(level.y))
      out += "<line class=\"level\" x1=\"\(Self.left)\" x2=\"\(Self.width - Self.right)\" y1=\"\(y)\" y2=\"\(y)\"/>"
      out += "<text class=\"tick\" x=\"\(Self.width - Self.right - 4)\" y=\"\(y)\" dy=\"-4\" text-anchor=\"end\">\(SVGText.escape(level.name))</text>\n"
    }
    for (index, series) in drawn.enumerated() where !series.points.isEmpty {
      let path = series.points.enumerated().map { i, p in
        "\(i == 0 ? "M" : "L")\(SVGText.coordinate(px(p.x))) \(SVGText.coordinate(py(p.y)))"
      }.joined(separator: " ")
      out += "<path class=\"series\" data-series=\"\(SVGText.escape(series.name))\" stroke=\"\(series.color)\" d=\"\(path)\"/>\n"
      if series.marked {
        for p in series.points {
          out += "<circle cx=\"\(SVGText.coordinate(px(p.x)))\" cy=\"\(SVGText.coordinate(py(p.y)))\" r=\"3\" fill=\"\(series.color)\"/>"
        }
        out += "\n"
      }
      // In the title's row, right-aligned: inside the frame it would hide the data it names.
      let legendX = Self.width - Self.right - Double(drawn.count - index) * 125
      out += "<line x1=\"\(legendX)\" x2=\"\(legendX + 18)\" y1=\"16\" y2=\"16\" stroke=\"\(series.color)\" stroke-width=\"2.5\"/>"
      out += "<text class=\"legend\" x=\"\(legendX + 24)\" y=\"16\" dominant-baseline=\"middle\">\(SVGText.escape(series.name))</text>\n"
    }
    return out + "</svg>"
  }
}

/// Horizontal bars, for where a profiled step's time went: one <rect class="bar"> per value.
struct BarChart {
  let id: String
  let title: String
  /// Each row's label and its parts (forward, backward), stacked.
  let rows: [(label: String, parts: [Double])]
  let partNames: [String]
  let colors: [String]
  let unit: String

  var svg: String {
    let rowHeight = 22.0, left = 150.0, right = 90.0, top = 46.0
    let height = top + Double(rows.count) * rowHeight + 16
    let width = LinePlot.width
    let largest = max(rows.map { $0.parts.reduce(0, +) }.max() ?? 0, .leastNonzeroMagnitude)
    var out = """
      <svg class="plot" id="\(id)" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 \(Int(width)) \(Int(height))" \
      width="\(Int(width))" height="\(Int(height))" role="img" aria-label="\(SVGText.escape(title))">
      <title>\(SVGText.escape(title))</title>
      <text class="title" x="10" y="20">\(SVGText.escape(title))</text>

      """
    for (index, name) in partNames.enumerated() {
      let x = left + Double(index) * 120
      out += "<rect x=\"\(x)\" y=\"28\" width=\"12\" height=\"10\" fill=\"\(colors[index])\"/>"
      out += "<text class=\"legend\" x=\"\(x + 18)\" y=\"33\" dominant-baseline=\"middle\">\(SVGText.escape(name))</text>\n"
    }
    for (rowIndex, row) in rows.enumerated() {
      let y = top + Double(rowIndex) * rowHeight
      out += "<text class=\"tick\" x=\"\(left - 8)\" y=\"\(y + rowHeight / 2)\" text-anchor=\"end\" dominant-baseline=\"middle\">\(SVGText.escape(row.label))</text>"
      var x = left
      for (partIndex, part) in row.parts.enumerated() where part > 0 {
        let w = part / largest * (width - left - right)
        out += "<rect class=\"bar\" data-series=\"\(SVGText.escape(row.label)) \(partNames[partIndex])\" x=\"\(SVGText.coordinate(x))\" y=\"\(y + 3)\" width=\"\(SVGText.coordinate(w))\" height=\"\(rowHeight - 6)\" fill=\"\(colors[partIndex])\"/>"
        x += w
      }
      out += "<text class=\"tick\" x=\"\(SVGText.coordinate(x + 6))\" y=\"\(y + rowHeight / 2)\" dominant-baseline=\"middle\">\(SVGText.number(row.parts.reduce(0, +))) \(unit)</text>\n"
    }
    return out + "</svg>"
  }
}

/// An axis from the data's range out to round numbers, with 4-7 ticks at 1, 2 or 5 times a power of 10.
struct Axis {
  let low: Double
  let high: Double
  let ticks: [Double]

  init(covering values: [Double]) {
    var low = values.min() ?? 0, high = values.max() ?? 1
    if low == high {
      let pad = low == 0 ? 1 : abs(low) * 0.1
      (low, high) = (low - pad, high + pad)
    }
    let rough = (high - low) / 5
    let power = pow(10, (log10(rough)).rounded(.down))
    let step = [1.0, 2, 5, 10].map { $0 * power }.first { $0 >= rough } ?? 10 * power
    self.low = (low / step).rounded(.down) * step
    self.high = (high / step).rounded(.up) * step
    var ticks: [Double] = []
    var tick = self.low
    while tick <= self.high + step / 2 && ticks.count < 20 {
      ticks.append(abs(tick) < step * 1e-9 ? 0 : tick)
      tick += step
    }
    self.ticks = ticks
  }

  func fraction(_ value: Double) -> Double { (value - low) / (high - low) }
}

enum SVGText {
  static func escape(_ text: String) -> String {
    var out = ""
    for character in text {
      switch character {
      case "&": out += "&amp;"
      case "<": out += "&lt;"
      case ">": out += "&gt;"
      case "\"": out += "&quot;"
      case "'": out += "&#39;"
      default: out.append(character)
      }
    }
    return out
  }

  static func coordinate(_ x: Double) -> String { String(format: "%.1f", x) }

  /// 1200, 0.25, 3.2e-4, 1.5M: short enough for a tick.
  static func number(_ x: Double) -> String {
    let magnitude = abs(x)
    if x == 0 { return "0" }
    if magnitude >= 1e6 { return String(format: "%.4gM", x / 1e6) }
    if magnitude >= 1e4 { return String(format: "%.4gk", x / 1e3) }
    if magnitude < 1e-3 { return String(format: "%.2g", x) }
    return String(format: "%.4g", x)
  }
}
