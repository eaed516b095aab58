import ImageIO
/// Colour maps.
///
/// A colour map sends t ∈ [0, 1] to a colour by piecewise-linear interpolation between
/// evenly spaced key colours (`t·(n−1)` picks the segment):
/// * `viridis`: perceptually uniform, dark violet → blue → green → yellow (the nine key
///   colours of matplotlib's viridis at t = 0, 1/8, …, 1) — heat maps, spectra, masks;
/// * `diverging`: blue → light grey → red (key colours of Moreland's cool-warm map),
///   for signed values centred on zero;
/// * `gray`: black → white.
/// Values outside [0, 1] are clamped; NaN maps to the map's `missing` colour (mid grey).

/// A colour map: t ∈ [0, 1] → RGB by linear interpolation between evenly spaced keys.
public struct ColorMap: Sendable {
    public let keys: [RGB]
    public let missing: RGB

    public init(keys: [RGB], missing: RGB = .gray) {
        precondition(keys.count >= 2, "a colour map needs two keys")
        self.keys = keys
        self.missing = missing
    }

    /// The colour at `t` (clamped to [0, 1]; NaN → `missing`).
    public func callAsFunction(_ t: Double) -> RGB {
        guard !t.isNaN else { return missing }
        let x = Swift.min(1, Swift.max(0, t)) * Double(keys.count - 1)
        let i = Swift.min(keys.count - 2, Int(x))
        let f = x - Double(i)
        let a = keys[i], b = keys[i + 1]
        return RGB(RGB.mix(a.r, b.r, f), RGB.mix(a.g, b.g, f), RGB.mix(a.b, b.b, f))
    }

    public static let viridis = ColorMap(keys: [
        RGB(68, 1, 84), RGB(71, 44, 122), RGB(59, 81, 139), RGB(44, 113, 142), RGB(33, 144, 141),
        RGB(39, 173, 129), RGB(92, 200, 99), RGB(170, 220, 50), RGB(253, 231, 37),
    ])

    public static let diverging = ColorMap(keys: [
        RGB(59, 76, 192), RGB(124, 159, 249), RGB(192, 212, 245), RGB(221, 221, 221),
        RGB(242, 203, 183), RGB(238, 133, 105), RGB(180, 4, 38),
    ])

    public static let gray = ColorMap(keys: [.black, .white])

    /// Paints a `[h, w]` field of values (row-major) with this map after the affine
    /// normalisation `t = (v − lo)/(hi − lo)` (a constant field maps to t = 0.5).
    public func paint(_ values: UnsafeBufferPointer<Float>, width w: Int, height h: Int,
                      lo: Double, hi: Double) -> Canvas {
        precondition(values.count == w * h, "paint: \(values.count) values for \(w)×\(h)")
        var out = Canvas(width: w, height: h)
        let span = hi - lo
        out.pixels.withUnsafeMutableBufferPointer { p in
            for i in 0..<(w * h) {
                let v = Double(values[i])
                let t = span > 0 ? (v - lo) / span : (v.isNaN ? .nan : 0.5)
                let c = self(t)
                p[3 * i] = c.r; p[3 * i + 1] = c.g; p[3 * i + 2] = c.b
            }
        }
        return out
    }
}
