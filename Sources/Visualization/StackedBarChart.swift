import Foundation
import ImageIO

/// Stacked bar charts: one bar per category, its segments stacked bottom to top.
///
/// Bar `i` spans `values[i][0] + … + values[i][k−1]`; segment `j` of bar `i` covers
/// `[Σ_{l<j} v_il, Σ_{l≤j} v_il]` on a linear y axis from 0 to `yMax` (nil: the nice
/// range above the tallest bar). Used for the per-layer low / causal / high energy
/// fractions of a feature dump (bars sum to 1).
public struct StackedBarChart {
    public var title: String
    public var xLabel: String
    public var yLabel: String
    /// Bar labels under the x axis.
    public var categories: [String]
    /// Segment names (legend), bottom segment first.
    public var segments: [String]
    /// `values[i][j]`: segment `j` of bar `i` (non-negative).
    public var values: [[Double]]
    public var colors: [RGB]
    public var yMax: Double?
    public var width: Int
    public var height: Int

    public init(title: String, xLabel: String, yLabel: String, categories: [String], segments: [String],
                values: [[Double]], colors: [RGB]? = nil, yMax: Double? = nil, width: Int = 640, height: Int = 360) {
        precondition(values.count == categories.count && values.allSatisfy { $0.count == segments.count },
                     "StackedBarChart: values must be categories × segments")
        self.title = title; self.xLabel = xLabel; self.yLabel = yLabel
        self.categories = categories; self.segments = segments; self.values = values
        self.colors = colors ?? Array(RGB.series.prefix(Swift.max(segments.count, 1)))
        self.yMax = yMax; self.width = width; self.height = height
    }

    public func render() -> Canvas {
        var c = Canvas(width: width, height: height, background: .white)
        let legendW = (segments.map { BitmapFont.width(of: $0) }.max() ?? 0) + 30
        let left = 56, right = 12 + legendW, top = 28, bottom = 40
        let plotW = Swift.max(1, width - left - right), plotH = Swift.max(1, height - top - bottom)
        let totals = values.map { $0.reduce(0) { $0 + Swift.max(0, $1) } }
        let yr: (lo: Double, hi: Double, ticks: [Double])
        if let ymax = yMax {
            let step = Axis.niceStep(lo: 0, hi: ymax, maxTicks: 6)
            yr = (0, ymax, Array(stride(from: 0, through: ymax + step * 1e-9, by: step)))
        } else {
            yr = Axis.niceRange(lo: 0, hi: totals.max() ?? 1, maxTicks: 6)
        }
        let py: (Double) -> Int = { v in top + Int(((1 - (v - yr.lo) / Swift.max(yr.hi - yr.lo, 1e-300)) * Double(plotH)).rounded()) }
        let step = yr.ticks.count > 1 ? yr.ticks[1] - yr.ticks[0] : 1
        for t in yr.ticks {
            let y = py(t)
            c.fillRect(x: left, y: y, width: plotW, height: 1, color: RGB(235, 235, 235))
            c.fillRect(x: left - 4, y: y, width: 4, height: 1, color: .black)
            let s = Axis.label(t, step: step)
            c.drawText(s, x: left - 7 - BitmapFont.width(of: s), y: y - 3, color: .black)
        }
        // Bars.
        let n = Swift.max(1, categories.count)
        let slot = Double(plotW) / Double(n)
        let barW = Swift.max(1, Swift.min(56, Int(slot * 0.7)))
        let labelEvery = Swift.max(1, Int((Double(BitmapFont.width(of: categories.max(by: { $0.count < $1.count }) ?? "") + 6) / slot).rounded(.up)))
        for (i, row) in values.enumerated() {
            let x = left + Int(slot * (Double(i) + 0.5)) - barW / 2
            var acc = 0.0
            for (j, v) in row.enumerated() {
                let y0 = py(acc), y1 = py(acc + Swift.max(0, v))
                c.fillRect(x: x, y: y1, width: barW, height: y0 - y1, color: colors[j % colors.count])
                acc += Swift.max(0, v)
            }
            if i % labelEvery == 0 {
                c.drawText(categories[i], centeredAt: x + barW / 2, y: top + plotH + 7, color: .black)
            }
        }
        c.fillRect(x: left, y: top, width: 1, height: plotH + 1, color: .black)
        c.fillRect(x: left, y: top + plotH, width: plotW + 1, height: 1, color: .black)
        // Titles and legend.
        c.drawText(Canvas.fitted(title, width: width - 8, scale: 2), centeredAt: width / 2, y: 6, color: .black, scale: 2)
        c.drawText(xLabel, centeredAt: left + plotW / 2, y: height - 14, color: .black)
        c.drawVerticalText(yLabel, x: 4, y: top + plotH / 2 - BitmapFont.width(of: yLabel) / 2, color: .black)
        let lx = left + plotW + 12
        for (j, name) in segments.enumerated().reversed() {
            let ly = top + 4 + (segments.count - 1 - j) * 14
            c.fillRect(x: lx, y: ly, width: 10, height: 10, color: colors[j % colors.count])
            c.drawText(name, x: lx + 14, y: ly + 2, color: .black)
        }
        return c
    }
}
