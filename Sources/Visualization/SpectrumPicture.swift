import Foundation
import ImageIO
import Numerics

/// Log-magnitude spectrum pictures with the band-pass mask contour, and the mask itself.
///
/// For a spectrum `F ∈ R^{C×h×w}` (the per-channel coefficients of the transform, reference §Causal-Tune layer)
/// the picture shows `L[u, v] = log₁₀(mean_c |F[c, u, v]| + ε)` (ε = 1e-12 times the
/// largest mean magnitude) on the coefficient grid, coefficient `(0, 0)` top-left, painted
/// with viridis between the 1 % and 99.9 % quantiles of L and enlarged with nearest
/// neighbour so each coefficient is a visible block. Over it, the mask's half-maximum
/// iso-line `M = ½·max M` is drawn (marching squares on the coefficient centres, linear
/// interpolation along cell edges) — the boundary of the causal band.
public enum SpectrumPicture {
    /// `L[u, v]` for one image's spectrum `[C, h, w]`, row-major `h·w`.
    public static func logMagnitude(_ spectrum: Tensor) -> [Float] {
        precondition(spectrum.rank == 3, "logMagnitude: spectrum must be [C, h, w], got \(spectrum.shape)")
        let C = spectrum.shape[0], N = spectrum.shape[1] * spectrum.shape[2]
        var mag = [Double](repeating: 0, count: N)
        let f = spectrum.data
        for c in 0..<C { for i in 0..<N { mag[i] += Double(Swift.abs(f[c * N + i])) } }
        let top = (mag.max() ?? 0) / Double(Swift.max(C, 1))
        let eps = Swift.max(top * 1e-12, 1e-30)
        return mag.map { Float(log10($0 / Double(Swift.max(C, 1)) + eps)) }
    }

    /// The spectrum picture: `[C, h, w]` spectrum, `[h, w]` mask (row-major), enlarged so
    /// the longer side is about `size` pixels.
    public static func render(spectrum: Tensor, mask: [Float]?, size: Int = 256,
                              contourColor: RGB = RGB(255, 64, 64)) -> Canvas {
        let h = spectrum.shape[1], w = spectrum.shape[2]
        let L = logMagnitude(spectrum)
        let (lo, hi) = quantiles(L, 0.01, 0.999)
        let small = L.withUnsafeBufferPointer { ColorMap.viridis.paint($0, width: w, height: h, lo: lo, hi: hi) }
        let s = Swift.max(1, size / Swift.max(h, w))
        var big = small.scaled(width: w * s, height: h * s, interpolation: .nearest)
        if let m = mask {
            precondition(m.count == h * w, "SpectrumPicture: mask of \(m.count) values for \(h)×\(w)")
            let level = Double(m.max() ?? 0) / 2
            if level > 0 {
                for seg in Contour.isoLines(m, width: w, height: h, level: Float(level)) {
                    big.drawLine(from: ((seg.0.x + 0.5) * Double(s), (seg.0.y + 0.5) * Double(s)),
                                 to: ((seg.1.x + 0.5) * Double(s), (seg.1.y + 0.5) * Double(s)),
                                 color: contourColor, thickness: 2)
                }
            }
        }
        return big
    }

    /// The mask `[h, w]` painted in grey levels (0 black, 1 white), enlarged like `render`.
    public static func renderMask(_ mask: [Float], width w: Int, height h: Int, size: Int = 256) -> Canvas {
        let small = mask.withUnsafeBufferPointer { ColorMap.gray.paint($0, width: w, height: h, lo: 0, hi: 1) }
        let s = Swift.max(1, size / Swift.max(h, w))
        return small.scaled(width: w * s, height: h * s, interpolation: .nearest)
    }

    static func quantiles(_ v: [Float], _ a: Double, _ b: Double) -> (Double, Double) {
        let s = v.filter { $0.isFinite }.sorted()
        guard !s.isEmpty else { return (0, 1) }
        let lo = Double(s[Int(Double(s.count - 1) * a)]), hi = Double(s[Int(Double(s.count - 1) * b)])
        return hi > lo ? (lo, hi) : (Double(s.first!), Double(s.last!))
    }
}

/// Iso-lines of a sampled field by marching squares.
public enum Contour {
    public typealias Point = (x: Double, y: Double)

    /// Segments of the iso-line `field = level` of a row-major `[h, w]` field whose samples
    /// sit at integer coordinates `(x, y)`. Each 2×2 block of samples contributes 0, 1 or 2
    /// segments; crossings are placed by linear interpolation along the block's edges; the
    /// two saddle cases are resolved by the block's mean value.
    public static func isoLines(_ field: [Float], width w: Int, height h: Int, level: Float) -> [(Point, Point)] {
        precondition(field.count == w * h, "isoLines: \(field.count) values for \(w)×\(h)")
        var out: [(Point, Point)] = []
        guard w >= 2, h >= 2 else { return out }
        func cross(_ a: Point, _ va: Float, _ b: Point, _ vb: Float) -> Point {
            let t = va == vb ? 0.5 : Double((level - va) / (vb - va))
            return (a.x + (b.x - a.x) * t, a.y + (b.y - a.y) * t)
        }
        for y in 0..<(h - 1) {
            for x in 0..<(w - 1) {
                // Corners: 0 top-left, 1 top-right, 2 bottom-right, 3 bottom-left.
                let p: [Point] = [(Double(x), Double(y)), (Double(x + 1), Double(y)),
                                  (Double(x + 1), Double(y + 1)), (Double(x), Double(y + 1))]
                let v = [field[y * w + x], field[y * w + x + 1], field[(y + 1) * w + x + 1], field[(y + 1) * w + x]]
                var code = 0
                for i in 0..<4 where v[i] >= level { code |= 1 << i }
                if code == 0 || code == 15 { continue }
                // Edge e joins corner e and corner (e+1)%4; the crossing on it:
                func e(_ i: Int) -> Point { cross(p[i], v[i], p[(i + 1) % 4], v[(i + 1) % 4]) }
                // Edges whose endpoints differ in side.
                var edges: [Int] = []
                for i in 0..<4 where (code >> i & 1) != (code >> ((i + 1) % 4) & 1) { edges.append(i) }
                if edges.count == 2 {
                    out.append((e(edges[0]), e(edges[1])))
                } else if edges.count == 4 {
                    // Saddle: corners 0 and 2 on one side, 1 and 3 on the other.
                    let centreAbove = (v[0] + v[1] + v[2] + v[3]) / 4 >= level
                    let zeroAbove = (code & 1) != 0
                    if centreAbove == zeroAbove {
                        // Corner 0's side connects through the centre: cut off corners 1 and 3.
                        out.append((e(0), e(1))); out.append((e(2), e(3)))
                    } else {
                        out.append((e(3), e(0))); out.append((e(1), e(2)))
                    }
                }
            }
        }
        return out
    }
}
