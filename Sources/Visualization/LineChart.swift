import Foundation
import ImageIO

/// Line charts with axes, ticks, tick labels, axis titles and a legend.
///
/// The plot area maps data `(x, y)` to pixels linearly:
/// `px = left + (x − x₀)/(x₁ − x₀)·plotWidth`, `py = top + (1 − (y − y₀)/(y₁ − y₀))·plotHeight`,
/// with `[x₀, x₁] × [y₀, y₁]` the nice ranges around the data (`Axis.niceRange`) or the
/// ranges given. `logY` plots log₁₀ y (non-positive values are dropped) with ticks at
/// powers of ten. Series with a single point are drawn as a dot.
public struct LineChart {
    /// One curve: its legend name, points and colour (nil: the next palette colour).
    public struct Series {
        public var name: String
        public var points: [(x: Double, y: Double)]
        public var color: RGB?
        public init(name: String, points: [(x: Double, y: Double)], color: RGB? = nil) {
            self.name = name; self.points = points; self.color = color
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [Series]
    public var width: Int
    public var height: Int
    public var logY: Bool
    /// Fixed y range (before `logY`); nil fits the data.
    public var yRange: ClosedRange<Double>?
    /// Draw markers at the data points (for sparse series such as evaluations).
    public var markers: Bool
    /// Fixed x range; nil fits the data.
    public var xRange: ClosedRange<Double>?

    public init(title: String, xLabel: String, yLabel: String, series: [Series],
                width: Int = 640, height: Int = 360, logY: Bool = false,
                yRange: ClosedRange<Double>? = nil, xRange: ClosedRange<Double>? = nil, markers: Bool = false) {
        self.title = title; self.xLabel = xLabel; self.yLabel = yLabel; self.series = series
        self.width = width; self.height = height; self.logY = logY; self.yRange = yRange
        self.markers = markers
        self.xRange = xRange
    }

    /// Margins around the plot area (left, right, top, bottom) in pixels.
    static let margins = (left: 66, right: 16, top: 28, bottom: 40)

    /// Draws the chart.
    public func render() -> Canvas {
        var c = Canvas(width: width, height: height, background: .white)
        let m = LineChart.margins
        let plotW = Swift.max(1, width - m.left - m.right), plotH = Swift.max(1, height - m.top - m.bottom)

        // Data ranges.
        let tf: (Double) -> Double? = { y in
            guard y.isFinite else { return nil }
            if logY { return y > 0 ? log10(y) : nil }
            return y
        }
        var xs: [Double] = [], ys: [Double] = []
        for s in series {
            for p in s.points where p.x.isFinite { if let y = tf(p.y) { xs.append(p.x); ys.append(y) } }
        }
        let xr = Axis.niceRange(lo: xRange?.lowerBound ?? xs.min() ?? 0, hi: xRange?.upperBound ?? xs.max() ?? 1, maxTicks: 7)
        var ylo = ys.min() ?? 0, yhi = ys.max() ?? 1
        if let r = yRange, let a = tf(r.lowerBound), let b = tf(r.upperBound) { ylo = a; yhi = b }
        let yr: (lo: Double, hi: Double, ticks: [Double])
        if logY {
            let a = ylo.rounded(.down), b = Swift.max(a + 1, yhi.rounded(.up))
            yr = (a, b, Array(stride(from: a, through: b, by: Swift.max(1, ((b - a) / 5).rounded(.up)))))
        } else if yRange != nil {
            let step = Axis.niceStep(lo: ylo, hi: yhi, maxTicks: 6)
            var t: [Double] = []
            var v = (ylo / step).rounded(.up) * step
            while v <= yhi + step * 1e-9 { t.append(v); v += step }
            yr = (ylo, yhi, t)
        } else {
            yr = Axis.niceRange(lo: ylo, hi: yhi, maxTicks: 6)
        }
        let px: (Double) -> Double = { x in Double(m.left) + (x - xr.lo) / Swift.max(xr.hi - xr.lo, 1e-300) * Double(plotW) }
        let py: (Double) -> Double = { y in Double(m.top) + (1 - (y - yr.lo) / Swift.max(yr.hi - yr.lo, 1e-300)) * Double(plotH) }

        // Grid, ticks and labels.
        let xStep = xr.ticks.count > 1 ? xr.ticks[1] - xr.ticks[0] : 1
        let yStep = yr.ticks.count > 1 ? yr.ticks[1] - yr.ticks[0] : 1
        for t in yr.ticks {
            let y = Int(py(t))
            c.fillRect(x: m.left, y: y, width: plotW, height: 1, color: RGB(235, 235, 235))
            c.fillRect(x: m.left - 4, y: y, width: 4, height: 1, color: .black)
            let s = logY ? "1e\(Int(t))" : Axis.label(t, step: yStep)
            let w = BitmapFont.width(of: s)
            c.drawText(s, x: m.left - 7 - w, y: y - 3, color: .black)
        }
        for t in xr.ticks {
            let x = Int(px(t))
            c.fillRect(x: x, y: m.top, width: 1, height: plotH, color: RGB(235, 235, 235))
            c.fillRect(x: x, y: m.top + plotH, width: 1, height: 4, color: .black)
            c.drawText(Axis.label(t, step: xStep), centeredAt: x, y: m.top + plotH + 7, color: .black)
        }
        c.strokeRect(x: m.left, y: m.top, width: plotW + 1, height: plotH + 1, color: .black)

        // Titles.
        c.drawText(Canvas.fitted(title, width: width - 8, scale: 2), centeredAt: width / 2, y: 6, color: .black, scale: 2)
        c.drawText(xLabel, centeredAt: m.left + plotW / 2, y: height - 14, color: .black)
        c.drawVerticalText(yLabel, x: 4, y: m.top + plotH / 2 - BitmapFont.width(of: yLabel) / 2, color: .black)

        // Curves.
        for (k, s) in series.enumerated() {
            let color = s.color ?? RGB.series[k % RGB.series.count]
            let pts = s.points.compactMap { p -> (x: Double, y: Double)? in
                guard p.x.isFinite, let y = tf(p.y) else { return nil }
                return (px(p.x), py(y))
            }
            c.drawPolyline(pts, color: color, thickness: 1.6)
            if markers || pts.count == 1 {
                for p in pts { c.drawLine(from: p, to: p, color: color, thickness: 5) }
            }
        }

        // Legend, only when there is more than one name: in the plot-area corner that hides
        // the fewest data points (top-right first on ties).
        let named = series.enumerated().filter { !$0.element.name.isEmpty }
        if named.count > 1 {
            let textW = named.map { BitmapFont.width(of: $0.element.name) }.max() ?? 0
            let boxW = textW + 26, boxH = named.count * 12 + 6
            let corners = [(m.left + plotW - boxW - 6, m.top + 6), (m.left + plotW - boxW - 6, m.top + plotH - boxH - 6),
                           (m.left + 8, m.top + 6), (m.left + 8, m.top + plotH - boxH - 6)]
            // Pixel positions of the curves, with 16 samples along every segment.
            var samples: [(Double, Double)] = []
            for s in series {
                let pts = s.points.compactMap { p -> (Double, Double)? in
                    guard p.x.isFinite, let y = tf(p.y) else { return nil }
                    return (px(p.x), py(y))
                }
                samples += pts
                if pts.count >= 2 {
                    for k in 1..<pts.count {
                        for t in 1..<16 {
                            let f = Double(t) / 16
                            samples.append((pts[k - 1].0 + (pts[k].0 - pts[k - 1].0) * f, pts[k - 1].1 + (pts[k].1 - pts[k - 1].1) * f))
                        }
                    }
                }
            }
            let hidden = corners.map { corner -> Int in
                samples.reduce(0) { n, q in
                    let inside = q.0 >= Double(corner.0 - 8) && q.0 <= Double(corner.0 + boxW + 8)
                        && q.1 >= Double(corner.1 - 8) && q.1 <= Double(corner.1 + boxH + 8)
                    return n + (inside ? 1 : 0)
                }
            }
            let best = hidden.indices.min { hidden[$0] < hidden[$1] } ?? 0
            let (bx, by) = corners[best]
            c.fillRect(x: bx, y: by, width: boxW, height: boxH, color: .white)
            c.strokeRect(x: bx, y: by, width: boxW, height: boxH, color: .gray)
            for (row, item) in named.enumerated() {
                let color = item.element.color ?? RGB.series[item.offset % RGB.series.count]
                let ly = by + 5 + row * 12
                c.fillRect(x: bx + 5, y: ly + 2, width: 12, height: 3, color: color)
                c.drawText(item.element.name, x: bx + 21, y: ly, color: .black)
            }
        }
        return c
    }
}
