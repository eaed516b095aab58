/// Weather and lighting for the synthetic benchmark: appearance changes only, the label
/// map of a scene is the same in every domain.
///
///   fog    Koschmieder's law  I = J·t + A·(1 − t),  t = exp(−β·depth),  β ∈ [0.025, 0.07] /m,
///          airlight A a light grey with a slight per-image tint.
///   night  I = J·(e·cast + L) + E + G + n: exposure e ∈ [0.08, 0.18], a colour cast (bluish or
///          sodium), L the light of street lamps and car lights falling on the scene
///          (Gaussian falloff), E emitters (lit windows, lamps, head/tail lights), G their
///          glow, n Gaussian sensor noise (σ ∈ [0.015, 0.035]) plus shot noise.
///   rain   3-tap vertical blur, contrast lowered towards the mean (×0.6–0.75), darker and
///          bluer, wet road and sidewalk reflecting the scene mirrored about the horizon
///          (stronger in puddles), a light haze (β 0.01), and 250–700 slanted bright streaks.
///   snow   ground (road, sidewalk, terrain) and the tops of vegetation whitened by a
///          noisy coverage, brighter overall, a white haze (β 0.012), and 300–900 flakes
///          (soft discs, radius 0.6–2 px).
/// Each domain's random numbers come from the scene seed and the domain, so every domain
/// is reproducible on its own.
import Data
import Foundation
import Numerics

enum Weather {
    static func apply(_ domain: SyntheticDomain, to s: SyntheticScene, seed: UInt64) -> [Float] {
        var rng = RandomGenerator(seed: seed)
        switch domain {
        case .source: return s.color
        case .fog: return fog(s, &rng)
        case .night: return night(s, &rng)
        case .rain: return rain(s, &rng)
        case .snow: return snow(s, &rng)
        }
    }

    static func haze(_ img: inout [Float], _ s: SyntheticScene, beta: Float, air: (Float, Float, Float)) {
        for i in 0..<(s.width * s.height) {
            let t = expf(-beta * s.depth[i])
            img[3 * i] = img[3 * i] * t + air.0 * (1 - t)
            img[3 * i + 1] = img[3 * i + 1] * t + air.1 * (1 - t)
            img[3 * i + 2] = img[3 * i + 2] * t + air.2 * (1 - t)
        }
    }

    static func fog(_ s: SyntheticScene, _ rng: inout RandomGenerator) -> [Float] {
        var img = s.color
        let a = rng.uniform(0.72, 0.88)
        let tint = rng.uniform(-0.03, 0.03)
        haze(&img, s, beta: rng.uniform(0.025, 0.07), air: (a - tint, a, a + tint))
        return img
    }

    static func night(_ s: SyntheticScene, _ rng: inout RandomGenerator) -> [Float] {
        let w = s.width, h = s.height, n = w * h
        let e = rng.uniform(0.08, 0.18)
        let cast: (Float, Float, Float) = rng.uniform() < 0.6 ? (0.75, 0.85, 1.25) : (1.2, 0.95, 0.7)
        var light = [Float](repeating: 0, count: n * 3)
        for l in s.lights {
            let radius = min(l.radius, Float(w) / 16)
            let r = radius * 4
            let x0 = max(0, Int(l.x - r)), x1 = min(w - 1, Int(l.x + r))
            // light falls mostly below the source (onto the ground)
            let y0 = max(0, Int(l.y - r * 0.5)), y1 = min(h - 1, Int(l.y + r * 2))
            if x0 > x1 || y0 > y1 { continue }
            let inv = 1 / (2 * radius * radius * 4)
            for y in y0...y1 { for x in x0...x1 {
                let dx = Float(x) + 0.5 - l.x, dy = Float(y) + 0.5 - l.y
                let g = 0.6 * expf(-(dx * dx + dy * dy * 0.5) * inv)
                let i = y * w + x
                light[3 * i] += g * l.r; light[3 * i + 1] += g * l.g; light[3 * i + 2] += g * l.b
            } }
        }
        var glow = [Float](repeating: 0, count: n * 3)
        for l in s.lights {
            let r = max(0.8, min(5, l.radius * 0.2))
            let x0 = max(0, Int(l.x - 4 * r)), x1 = min(w - 1, Int(l.x + 4 * r))
            let y0 = max(0, Int(l.y - 4 * r)), y1 = min(h - 1, Int(l.y + 4 * r))
            if x0 > x1 || y0 > y1 { continue }
            for y in y0...y1 { for x in x0...x1 {
                let dx = Float(x) + 0.5 - l.x, dy = Float(y) + 0.5 - l.y
                let g = 0.8 * expf(-(dx * dx + dy * dy) / (2 * r * r))
                let i = y * w + x
                glow[3 * i] += g * l.r; glow[3 * i + 1] += g * l.g; glow[3 * i + 2] += g * l.b
            } }
        }
        let sigma = rng.uniform(0.015, 0.035)
        var img = [Float](repeating: 0, count: n * 3)
        for i in 0..<n {
            // the night sky is darker than the ground and not lit by the lamps
            let isSky = s.labels[i] == 10
            let sky: Float = isSky ? 0.35 : 1, lit: Float = isSky ? 0 : 1
            let ch = [cast.0, cast.1, cast.2]
            for c in 0..<3 {
                var v = s.color[3 * i + c] * (e * ch[c] * sky + lit * light[3 * i + c]) + s.emission[3 * i + c] + glow[3 * i + c]
                v += sigma * rng.normal() + 0.02 * sqrtf(max(v, 0)) * rng.normal()
                img[3 * i + c] = v
            }
        }
        return img
    }

    static func rain(_ s: SyntheticScene, _ rng: inout RandomGenerator) -> [Float] {
        let w = s.width, h = s.height, n = w * h
        var img = [Float](repeating: 0, count: n * 3)
        for y in 0..<h { for x in 0..<w { for c in 0..<3 {
            let a = s.color[(max(0, y - 1) * w + x) * 3 + c], b = s.color[(y * w + x) * 3 + c], d = s.color[(min(h - 1, y + 1) * w + x) * 3 + c]
            img[(y * w + x) * 3 + c] = 0.25 * a + 0.5 * b + 0.25 * d
        } } }
        // wet ground reflections (mirror about the horizon), puddles stronger
        let refl = rng.uniform(0.2, 0.35)
        let ns = UInt32(truncatingIfNeeded: rng.next())
        let src = img
        for y in 0..<h {
            let yr = Int(2 * s.horizon - Float(y) - 1)
            if yr < 0 || yr >= h { continue }
            for x in 0..<w {
                let i = y * w + x
                let l = s.labels[i]
                guard l == 0 || l == 1 else { continue }
                let puddle: Float = valueNoise(Float(x) / 9, Float(y) / 3, ns) > 0.62 ? 2.0 : 1.0
                let k = min(0.8, refl * puddle) * (l == 1 ? 0.6 : 1)
                let j = yr * w + x
                for c in 0..<3 { img[3 * i + c] = img[3 * i + c] * (1 - k) * 0.8 + src[3 * j + c] * k }
            }
        }
        // lower contrast, darker, bluer
        var mean: Float = 0
        for v in img { mean += v }
        mean /= Float(img.count)
        let contrast = rng.uniform(0.6, 0.75), dark = rng.uniform(0.75, 0.9)
        for i in 0..<n {
            img[3 * i] = (mean + (img[3 * i] - mean) * contrast) * dark * 0.95
            img[3 * i + 1] = (mean + (img[3 * i + 1] - mean) * contrast) * dark
            img[3 * i + 2] = (mean + (img[3 * i + 2] - mean) * contrast) * dark * 1.06
        }
        haze(&img, s, beta: 0.01, air: (0.55, 0.58, 0.62))
        // streaks
        let count = 250 + rng.integer(below: 450)
        let slant = rng.uniform(-0.35, 0.35)
        for _ in 0..<count {
            let x0 = rng.uniform(0, Float(w)), y0 = rng.uniform(-10, Float(h))
            let len = rng.uniform(5, 14), alpha = rng.uniform(0.12, 0.3)
            for t in 0..<Int(len) {
                let y = Int(y0 + Float(t)), x = Int(x0 + slant * Float(t))
                if y < 0 || y >= h || x < 0 || x >= w { continue }
                let i = y * w + x
                for c in 0..<3 { img[3 * i + c] += (0.85 - img[3 * i + c]) * alpha }
            }
        }
        return img
    }

    static func snow(_ s: SyntheticScene, _ rng: inout RandomGenerator) -> [Float] {
        let w = s.width, h = s.height, n = w * h
        var img = s.color
        let cover = rng.uniform(0.55, 0.9)
        let ns = UInt32(truncatingIfNeeded: rng.next())
        let white: (Float, Float, Float) = (0.9, 0.92, 0.96)
        for y in 0..<h { for x in 0..<w {
            let i = y * w + x
            let l = s.labels[i]
            var k: Float = 0
            let nz = fbm(Float(x) / 6, Float(y) / 3, ns)
            switch l {
            case 0: k = cover * (0.55 + 0.45 * nz) * 0.85   // road: tyre tracks keep some asphalt
            case 1, 9: k = cover * (0.75 + 0.25 * nz)
            case 8: k = y > 0 && s.labels[i - w] != 8 ? 0.8 : (nz > 0.6 ? 0.5 * cover : 0)  // snow on foliage tops
            case 2, 3, 4: k = (y > 0 && s.labels[i - w] == 10) ? 0.7 : 0  // roof edges
            default: k = 0
            }
            img[3 * i] += (white.0 - img[3 * i]) * k
            img[3 * i + 1] += (white.1 - img[3 * i + 1]) * k
            img[3 * i + 2] += (white.2 - img[3 * i + 2]) * k
        } }
        let gain = rng.uniform(1.05, 1.2)
        for i in 0..<(n * 3) { img[i] = img[i] * gain + 0.03 }
        haze(&img, s, beta: 0.012, air: (0.88, 0.9, 0.93))
        let flakes = 300 + rng.integer(below: 600)
        for _ in 0..<flakes {
            let cx = rng.uniform(0, Float(w)), cy = rng.uniform(0, Float(h))
            let r = rng.uniform(0.6, 2.0), a = rng.uniform(0.5, 0.9)
            let x0 = max(0, Int(cx - r - 1)), x1 = min(w - 1, Int(cx + r + 1))
            let y0 = max(0, Int(cy - r - 1)), y1 = min(h - 1, Int(cy + r + 1))
            if x0 > x1 || y0 > y1 { continue }
            for y in y0...y1 { for x in x0...x1 {
                let dx = Float(x) + 0.5 - cx, dy = Float(y) + 0.5 - cy
                let d = (dx * dx + dy * dy).squareRoot()
                let k = a * max(0, min(1, r + 0.5 - d))
                let i = y * w + x
                for c in 0..<3 { img[3 * i + c] += (0.97 - img[3 * i + c]) * k }
            } }
        }
        return img
    }
}
