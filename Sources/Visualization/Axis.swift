import Foundation

/// Axis ticks and tick labels for the charts.
///
/// Ticks are "nice" numbers: the step is `m·10^e` with `m ∈ {1, 2, 2.5, 5}` chosen as the
/// smallest that gives at most `maxTicks` ticks over `[lo, hi]`; ticks are the multiples of
/// the step inside the (expanded) range. Labels use fixed notation with as many decimals as
/// the step needs, or `1.5e-4`-style notation for very small or very large magnitudes.
public enum Axis {
    /// The tick step for `[lo, hi]` with at most `maxTicks` ticks.
    public static func niceStep(lo: Double, hi: Double, maxTicks: Int = 6) -> Double {
        let span = hi - lo
        guard span > 0, span.isFinite else { return 1 }
        let raw = span / Double(Swift.max(1, maxTicks - 1))
        let e = (log10(raw)).rounded(.down)
        let base = pow(10, e)
        for m in [1.0, 2.0, 2.5, 5.0, 10.0] where m * base >= raw * (1 - 1e-9) { return m * base }
        return 10 * base
    }

    /// `[lo, hi]` widened to multiples of the nice step, and the ticks inside it.
    /// A degenerate range (lo == hi) is widened around the value first.
    public static func niceRange(lo: Double, hi: Double, maxTicks: Int = 6) -> (lo: Double, hi: Double, ticks: [Double]) {
        var a = lo, b = hi
        if !(a.isFinite && b.isFinite) { a = 0; b = 1 }
        if a > b { swap(&a, &b) }
        if a == b {
            let d = a == 0 ? 1 : Swift.abs(a) * 0.1
            a -= d; b += d
        }
        let step = niceStep(lo: a, hi: b, maxTicks: maxTicks)
        let first = (a / step).rounded(.down) * step
        let last = (b / step).rounded(.up) * step
        var ticks: [Double] = []
        var k = 0
        while true {
            let t = first + Double(k) * step
            if t > last + step * 1e-9 || ticks.count > 100 { break }
            ticks.append(Swift.abs(t) < step * 1e-9 ? 0 : t)
            k += 1
        }
        return (first, last, ticks)
    }

    /// The label of tick `value` on an axis whose ticks are `step` apart.
    public static func label(_ value: Double, step: Double) -> String {
        if value == 0 { return "0" }
        let mag = Swift.max(Swift.abs(value), Swift.abs(step))
        if mag < 1e-3 || mag >= 1e5 {
            // Scientific: enough mantissa digits to tell neighbouring ticks apart.
            let e = Int(log10(Swift.abs(value)).rounded(.down))
            let digits = Swift.max(0, e - Int(log10(Swift.abs(step)).rounded(.down)))
            let m = value / pow(10, Double(e))
            return String(format: "%.\(Swift.min(digits, 3))fe%d", m, e)
        }
        let decimals = Swift.max(0, Swift.min(6, -Int(log10(step).rounded(.down)) + (isHalfStep(step) ? 1 : 0)))
        return String(format: "%.\(decimals)f", value)
    }

    /// Steps like 2.5·10^e need one more decimal than their exponent says.
    private static func isHalfStep(_ step: Double) -> Bool {
        let m = step / pow(10, log10(step).rounded(.down))
        return Swift.abs(m - 2.5) < 1e-6
    }
}
