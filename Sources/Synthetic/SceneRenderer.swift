/// The synthetic street scene (reference §Synthetic benchmark): geometry, labels, depth and the clean image.
///
/// A pinhole camera at height h_c = 1.5 m looks down a straight street. With focal length
/// f (pixels), horizon row y_h and vanishing column v_x, a world point at lateral offset X,
/// height Y and distance z projects to
///     x = v_x + f·X / z,      y = y_h + f·(h_c − Y) / z,
/// so the ground row y sees distance z = f·h_c / (y − y_h), and a facade plane at lateral
/// offset X_b is hit by column x at z = f·X_b / |x − v_x|. Every pixel is ray-cast against
/// the ground (road | sidewalk | terrain by |X|), the building facades on both sides (in
/// segments along z, with heights and window grids), low walls / fences and the sky; then
/// upright objects (cars, buses, people, riders with bicycles, poles with signs, traffic
/// lights and street lamps, trees) are drawn far to near with a depth test. The depth map
/// is the distance of what each pixel sees (sky: 1000 m); labels are Cityscapes train ids.
import Foundation
import Numerics

/// One rendered scene: the clean image, the label map, the depth and the light sources the
/// night domain switches on.
public struct SyntheticScene: Sendable {
    public let width: Int
    public let height: Int
    /// [H, W, 3] linear-ish RGB in [0, 1].
    public var color: [Float]
    /// [H, W] train ids.
    public var labels: [UInt8]
    /// [H, W] metres.
    public var depth: [Float]
    /// [H, W, 3] light emitted at night (lit windows, lamps, head/tail lights), in [0, 1].
    public var emission: [Float]
    /// Point lights for the night glow: (x, y, radius px, r, g, b).
    public var lights: [(x: Float, y: Float, radius: Float, r: Float, g: Float, b: Float)]
    /// The horizon row (used by wet-road reflections).
    public var horizon: Float
}

/// Cheap deterministic value noise in [0, 1].
@inline(__always) func hash2(_ x: Int32, _ y: Int32, _ s: UInt32) -> Float {
    var h = UInt32(bitPattern: x) &* 374_761_393 &+ UInt32(bitPattern: y) &* 668_265_263 &+ s &* 2_246_822_519
    h = (h ^ (h >> 13)) &* 1_274_126_177
    h ^= h >> 16
    return Float(h & 0xFFFFFF) * (1.0 / 16_777_216.0)
}

@inline(__always) func valueNoise(_ x: Float, _ y: Float, _ s: UInt32) -> Float {
    let xf = x.rounded(.down), yf = y.rounded(.down)
    let xi = Int32(clamping: Int(xf)), yi = Int32(clamping: Int(yf))
    var tx = x - xf, ty = y - yf
    tx = tx * tx * (3 - 2 * tx); ty = ty * ty * (3 - 2 * ty)
    let a = hash2(xi, yi, s), b = hash2(xi &+ 1, yi, s), c = hash2(xi, yi &+ 1, s), d = hash2(xi &+ 1, yi &+ 1, s)
    return (a + (b - a) * tx) * (1 - ty) + (c + (d - c) * tx) * ty
}

/// Two octaves of value noise.
@inline(__always) func fbm(_ x: Float, _ y: Float, _ s: UInt32) -> Float {
    0.65 * valueNoise(x, y, s) + 0.35 * valueNoise(2.1 * x + 7.3, 2.1 * y + 1.7, s &+ 17)
}

/// A floating-point colour before tone mapping: the renderer shades, adds weather and lights
/// in this space and quantises to the 8-bit `RGB` of ImageIO only at the end.
struct Radiance { var r: Float, g: Float, b: Float
    init(_ r: Float, _ g: Float, _ b: Float) { self.r = r; self.g = g; self.b = b }
    func scaled(_ k: Float) -> Radiance { Radiance(r * k, g * k, b * k) }
}

/// Builds and renders one scene from its own generator.
struct SceneRenderer {
    let w: Int, h: Int
    var rng: RandomGenerator
    // camera
    let f: Float, camH: Float = 1.5, yh: Float, vx: Float
    // street cross-section (metres)
    let roadHalf: Float, roadShift: Float, sidewalk: Float, terrainL: Float, terrainR: Float
    var buildingL: Float { roadHalf + sidewalk + terrainL }
    var buildingR: Float { roadHalf + sidewalk + terrainR }
    let noiseSeed: UInt32

    struct Segment { var z0: Float, z1: Float, isBuilding: Bool, height: Float, color: Radiance,
                     winU: Float, winV: Float, winColor: Radiance, litSeed: UInt32, lowWall: Int /* 0 none, 3 wall, 4 fence */ }
    var left: [Segment] = [], right: [Segment] = []
    // palettes for this scene
    let roadColor: Radiance, sidewalkColor: Radiance, terrainColor: Radiance, skyLow: Radiance, skyHigh: Radiance, vegColor: Radiance

    init(width: Int, height: Int, seed: UInt64) {
        w = width; h = height
        rng = RandomGenerator(seed: seed)
        noiseSeed = UInt32(truncatingIfNeeded: rng.next())
        f = Float(width) * rng.uniform(0.55, 0.75)
        yh = Float(height) * rng.uniform(0.36, 0.48)
        vx = Float(width) * rng.uniform(0.4, 0.6)
        roadHalf = rng.uniform(3.5, 6.5)
        roadShift = rng.uniform(-1.5, 1.5)
        sidewalk = rng.uniform(2.0, 4.0)
        terrainL = rng.uniform() < 0.5 ? rng.uniform(1.0, 4.0) : 0
        terrainR = rng.uniform() < 0.5 ? rng.uniform(1.0, 4.0) : 0
        let g = rng.uniform(0.28, 0.42)
        roadColor = Radiance(g, g * rng.uniform(0.97, 1.03), g * rng.uniform(0.97, 1.06))
        let s = rng.uniform(0.55, 0.72)
        sidewalkColor = Radiance(s * rng.uniform(0.95, 1.1), s * rng.uniform(0.9, 1.0), s * rng.uniform(0.85, 1.0))
        terrainColor = Radiance(rng.uniform(0.35, 0.55), rng.uniform(0.5, 0.65), rng.uniform(0.2, 0.35))
        skyHigh = Radiance(rng.uniform(0.25, 0.45), rng.uniform(0.45, 0.6), rng.uniform(0.75, 0.95))
        skyLow = Radiance(rng.uniform(0.7, 0.85), rng.uniform(0.78, 0.9), rng.uniform(0.85, 0.98))
        vegColor = Radiance(rng.uniform(0.12, 0.3), rng.uniform(0.35, 0.55), rng.uniform(0.08, 0.2))
        left = makeSegments(); right = makeSegments()
    }

    mutating func makeSegments() -> [Segment] {
        var out: [Segment] = []
        var z: Float = rng.uniform(1, 4)
        while z < 160 {
            let len = rng.uniform(8, 28)
            let isB = rng.uniform() < 0.78
            let base = Radiance(rng.uniform(0.35, 0.8), rng.uniform(0.3, 0.7), rng.uniform(0.25, 0.65))
            let lw: Int = isB ? 0 : (rng.uniform() < 0.5 ? (rng.uniform() < 0.5 ? 3 : 4) : 0)
            out.append(Segment(z0: z, z1: z + len, isBuilding: isB, height: rng.uniform(7, 26), color: base,
                               winU: rng.uniform(2.2, 4.0), winV: rng.uniform(2.8, 3.4),
                               winColor: Radiance(rng.uniform(0.1, 0.25), rng.uniform(0.15, 0.3), rng.uniform(0.25, 0.4)),
                               litSeed: UInt32(truncatingIfNeeded: rng.next()), lowWall: lw))
            z += len + (rng.uniform() < 0.25 ? rng.uniform(1, 6) : 0)
        }
        return out
    }

    static func segment(_ segs: [Segment], at z: Float) -> Segment? {
        for s in segs where z >= s.z0 && z < s.z1 { return s }
        return nil
    }

    mutating func render() -> SyntheticScene {
        let n = w * h
        var color = [Float](repeating: 0, count: n * 3)
        var labels = [UInt8](repeating: 10, count: n)
        var depth = [Float](repeating: 1000, count: n)
        var emission = [Float](repeating: 0, count: n * 3)
        var lights: [(x: Float, y: Float, radius: Float, r: Float, g: Float, b: Float)] = []
        let ns = noiseSeed
        // Background: sky, ground, facades, low walls.
        for y in 0..<h {
            let yc = Float(y) + 0.5
            for x in 0..<w {
                let xc = Float(x) + 0.5
                let i = y * w + x
                var lab: UInt8 = 10, z: Float = 1000
                var c: Radiance
                // sky
                let t = max(0, min(1, (yh - yc) / max(yh, 1)))
                c = Radiance(skyLow.r + (skyHigh.r - skyLow.r) * t, skyLow.g + (skyHigh.g - skyLow.g) * t,
                        skyLow.b + (skyHigh.b - skyLow.b) * t)
                let cloud = fbm(xc / 18, yc / 7, ns &+ 1)
                if cloud > 0.6 { let k = min(1, (cloud - 0.6) * 3); c = Radiance(c.r + (0.95 - c.r) * k, c.g + (0.95 - c.g) * k, c.b + (0.97 - c.b) * k) }
                // ground
                if yc > yh + 0.25 {
                    let zg = min(400, f * camH / (yc - yh))
                    let X = (xc - vx) * zg / f - roadShift
                    let ax = abs(X)
                    z = zg
                    let tex = fbm(X * 2.5, zg * 0.6, ns &+ 2)
                    if ax < roadHalf {
                        lab = 0
                        c = roadColor.scaled(0.85 + 0.3 * tex)
                        // lane markings: dashed centre line and solid edge lines
                        let dash = (zg * 0.25).truncatingRemainder(dividingBy: 1) < 0.5
                        if (abs(X) < 0.08 && dash) || abs(ax - (roadHalf - 0.25)) < 0.08 { c = Radiance(0.85, 0.85, 0.8) }
                    } else if ax < roadHalf + sidewalk {
                        lab = 1
                        let tile = ((zg * 1.2).truncatingRemainder(dividingBy: 1) < 0.06) || ((ax - roadHalf) * 1.2).truncatingRemainder(dividingBy: 1) < 0.06
                        c = sidewalkColor.scaled((tile ? 0.8 : 1.0) * (0.9 + 0.2 * tex))
                        if ax < roadHalf + 0.15 { c = sidewalkColor.scaled(1.1) }  // kerb
                    } else {
                        lab = 9
                        c = terrainColor.scaled(0.75 + 0.5 * fbm(X * 4, zg * 2, ns &+ 3))
                    }
                }
                // facades and low walls (the side facing the street)
                let side: [Segment] = xc < vx ? left : right
                let xb = xc < vx ? buildingL : buildingR
                let dx = abs(xc - vx)
                if dx > 0.5 {
                    let shiftX = xc < vx ? -roadShift : roadShift
                    let plane = max(0.5, xb + shiftX)
                    let zf = f * plane / dx
                    if zf < z, let seg = SceneRenderer.segment(side, at: zf) {
                        let v = camH - (yc - yh) * zf / f  // height above ground
                        if seg.isBuilding && v >= 0 && v < seg.height {
                            lab = 2; z = zf
                            let brick = 0.85 + 0.3 * fbm(zf * 3, v * 3, ns &+ 4)
                            c = seg.color.scaled(brick)
                            let fu = (zf / seg.winU).truncatingRemainder(dividingBy: 1)
                            let fv = (v / seg.winV).truncatingRemainder(dividingBy: 1)
                            if v > 3 && v < seg.height - 1.2 && fu > 0.25 && fu < 0.75 && fv > 0.3 && fv < 0.8 {
                                let refl = 0.2 * (1 - fv)
                                c = Radiance(seg.winColor.r + refl, seg.winColor.g + refl, seg.winColor.b + refl)
                                let wi = Int32(Int(zf / seg.winU)), wj = Int32(Int(v / seg.winV))
                                if hash2(wi, wj, seg.litSeed) < 0.35 {
                                    emission[3 * i] = 0.95; emission[3 * i + 1] = 0.8; emission[3 * i + 2] = 0.45
                                }
                            }
                            if v < 3 && fu > 0.4 && fu < 0.6 && v < 2.2 { c = seg.color.scaled(0.35) }  // doors
                        } else if seg.lowWall != 0 && v >= 0 && v < (seg.lowWall == 3 ? 1.1 : 1.6) {
                            lab = UInt8(seg.lowWall); z = zf
                            if seg.lowWall == 3 {
                                c = Radiance(0.55, 0.53, 0.5).scaled(0.85 + 0.3 * fbm(zf * 2, v * 4, ns &+ 5))
                            } else {
                                let bar = (zf * 2).truncatingRemainder(dividingBy: 1) < 0.2 || v > 1.45
                                c = bar ? Radiance(0.45, 0.4, 0.35) : Radiance(0.6, 0.58, 0.52).scaled(0.9)
                            }
                        }
                    }
                }
                labels[i] = lab; depth[i] = z
                color[3 * i] = c.r; color[3 * i + 1] = c.g; color[3 * i + 2] = c.b
            }
        }
        // Upright objects, far to near.
        var objects: [Object] = []
        makeObjects(into: &objects)
        objects.sort { $0.z > $1.z }
        var canvas = SceneBuffers(w: w, h: h, color: color, labels: labels, depth: depth, emission: emission)
        for o in objects { draw(o, on: &canvas, lights: &lights) }
        return SyntheticScene(width: w, height: h, color: canvas.color, labels: canvas.labels, depth: canvas.depth,
                              emission: canvas.emission, lights: lights, horizon: yh)
    }

    // MARK: - Objects

    enum Kind { case car, bus, person, rider, pole, tree }
    struct Object { var kind: Kind; var X: Float; var z: Float; var color: Radiance; var size: Float; var variant: Int }

    mutating func makeObjects(into objs: inout [Object]) {
        let cars = 2 + rng.integer(below: 6)
        for _ in 0..<cars {
            let lane = rng.uniform() < 0.5 ? -1 : 1
            let X = Float(lane) * rng.uniform(0.3, 0.7) * roadHalf + roadShift
            let big = rng.uniform() < 0.12
            objs.append(Object(kind: big ? .bus : .car, X: X, z: rng.uniform(6, 70),
                               color: Radiance(rng.uniform(0.05, 0.9), rng.uniform(0.05, 0.9), rng.uniform(0.05, 0.9)),
                               size: big ? rng.uniform(2.9, 3.4) : rng.uniform(1.4, 1.6), variant: lane))
        }
        let people = 1 + rng.integer(below: 6)
        for _ in 0..<people {
            let s: Float = rng.uniform() < 0.5 ? -1 : 1
            let X = s * (roadHalf + rng.uniform(0.4, sidewalk - 0.3)) + roadShift
            objs.append(Object(kind: .person, X: X, z: rng.uniform(4, 45),
                               color: Radiance(rng.uniform(0.05, 0.8), rng.uniform(0.05, 0.8), rng.uniform(0.05, 0.8)),
                               size: rng.uniform(1.55, 1.9), variant: rng.integer(below: 4)))
        }
        if rng.uniform() < 0.5 {
            let X = (rng.uniform() < 0.5 ? -1 : 1) * (roadHalf - 0.8) + roadShift
            objs.append(Object(kind: .rider, X: X, z: rng.uniform(5, 35),
                               color: Radiance(rng.uniform(0.1, 0.8), rng.uniform(0.1, 0.8), rng.uniform(0.1, 0.8)), size: 1.75, variant: 0))
        }
        var z: Float = rng.uniform(4, 10)
        while z < 90 {
            for s: Float in [-1, 1] where rng.uniform() < 0.7 {
                objs.append(Object(kind: .pole, X: s * (roadHalf + 0.45) + roadShift, z: z + rng.uniform(0, 3),
                                   color: Radiance(0.45, 0.45, 0.47), size: rng.uniform(4.5, 7.5), variant: rng.integer(below: 4)))
            }
            z += rng.uniform(12, 25)
        }
        let trees = 2 + rng.integer(below: 6)
        for _ in 0..<trees {
            let s: Float = rng.uniform() < 0.5 ? -1 : 1
            let tw = s < 0 ? terrainL : terrainR
            let X = s * (roadHalf + sidewalk + (tw > 0 ? tw * 0.5 : -0.6)) + roadShift
            objs.append(Object(kind: .tree, X: X, z: rng.uniform(5, 80), color: vegColor.scaled(rng.uniform(0.8, 1.2)),
                               size: rng.uniform(4, 8), variant: 0))
        }
    }

    /// The renderer's depth-buffered layers (colour, labels, depth, emission) — not a picture
    /// canvas: objects are painted far to near with a z-test.
    struct SceneBuffers {
        let w: Int, h: Int
        var color: [Float], labels: [UInt8], depth: [Float], emission: [Float]
        /// Paints the pixels of a world-space rectangle (lateral x0…x1, height y0…y1 at distance z).
        mutating func rect(_ r: SceneRenderer, X0: Float, X1: Float, Y0: Float, Y1: Float, z: Float, label: UInt8,
                           color c: Radiance, shade: (Float, Float) -> Float = { _, _ in 1 }, emit: Radiance? = nil) {
            let px0 = r.vx + r.f * X0 / z, px1 = r.vx + r.f * X1 / z
            let py0 = r.yh + r.f * (r.camH - Y1) / z, py1 = r.yh + r.f * (r.camH - Y0) / z
            let xs = max(0, Int((px0 - 0.5).rounded(.up))), xe = min(w - 1, Int((px1 - 0.5).rounded(.down)))
            let ys = max(0, Int((py0 - 0.5).rounded(.up))), ye = min(h - 1, Int((py1 - 0.5).rounded(.down)))
            if xs > xe || ys > ye { return }
            for y in ys...ye { for x in xs...xe {
                let i = y * w + x
                if z > depth[i] { continue }
                let u = (Float(x) + 0.5 - px0) / max(px1 - px0, 1e-3), v = (Float(y) + 0.5 - py0) / max(py1 - py0, 1e-3)
                let k = shade(u, v)
                depth[i] = z; labels[i] = label
                color[3 * i] = c.r * k; color[3 * i + 1] = c.g * k; color[3 * i + 2] = c.b * k
                if let e = emit { emission[3 * i] = e.r; emission[3 * i + 1] = e.g; emission[3 * i + 2] = e.b }
                else { emission[3 * i] = 0; emission[3 * i + 1] = 0; emission[3 * i + 2] = 0 }
            } }
        }
        /// Paints a world-space ellipse (centre X, Y; radii rx, ry) at distance z.
        mutating func ellipse(_ r: SceneRenderer, X: Float, Y: Float, rx: Float, ry: Float, z: Float, label: UInt8,
                              color c: Radiance, texture: UInt32 = 0, ring: Float = 0) {
            let cx = r.vx + r.f * X / z, cy = r.yh + r.f * (r.camH - Y) / z
            let ax = max(r.f * rx / z, 0.5), ay = max(r.f * ry / z, 0.5)
            let xs = max(0, Int(cx - ax)), xe = min(w - 1, Int(cx + ax))
            let ys = max(0, Int(cy - ay)), ye = min(h - 1, Int(cy + ay))
            if xs > xe || ys > ye { return }
            for y in ys...ye { for x in xs...xe {
                let dx = (Float(x) + 0.5 - cx) / ax, dy = (Float(y) + 0.5 - cy) / ay
                let d2 = dx * dx + dy * dy
                if d2 > 1 || (ring > 0 && d2 < ring * ring) { continue }
                let i = y * w + x
                if z > depth[i] { continue }
                var k: Float = 1
                if texture != 0 { k = 0.7 + 0.6 * fbm(Float(x) / 2.5, Float(y) / 2.5, texture) - 0.25 * dy }
                depth[i] = z; labels[i] = label
                color[3 * i] = c.r * k; color[3 * i + 1] = c.g * k; color[3 * i + 2] = c.b * k
                emission[3 * i] = 0; emission[3 * i + 1] = 0; emission[3 * i + 2] = 0
            } }
        }
    }

    func project(_ X: Float, _ Y: Float, _ z: Float) -> (Float, Float) { (vx + f * X / z, yh + f * (camH - Y) / z) }

    func draw(_ o: Object, on cv: inout SceneBuffers, lights: inout [(x: Float, y: Float, radius: Float, r: Float, g: Float, b: Float)]) {
        let z = o.z, X = o.X, c = o.color
        switch o.kind {
        case .car, .bus:
            let isBus = o.kind == .bus
            let lab: UInt8 = isBus ? 15 : 13
            let half: Float = isBus ? 1.25 : 0.9
            let top = o.size
            cv.rect(self, X0: X - half, X1: X + half, Y0: 0.25, Y1: isBus ? top : 0.95, z: z, label: lab, color: c,
                    shade: { _, v in 0.8 + 0.3 * (1 - v) })
            if !isBus {
                cv.rect(self, X0: X - half * 0.8, X1: X + half * 0.8, Y0: 0.95, Y1: top, z: z + 0.01, label: lab, color: c.scaled(0.9),
                        shade: { u, v in (v > 0.15 && u > 0.08 && u < 0.92) ? 0.35 : 1 })
            } else {
                cv.rect(self, X0: X - half * 0.9, X1: X + half * 0.9, Y0: 1.6, Y1: 2.5, z: z - 0.01, label: lab, color: Radiance(0.15, 0.2, 0.25))
            }
            for s: Float in [-1, 1] {
                cv.ellipse(self, X: X + s * (half - 0.35), Y: 0.32, rx: 0.32, ry: 0.32, z: z - 0.02, label: lab, color: Radiance(0.06, 0.06, 0.06))
                // rear lights (we see the backs of cars driving away) or headlights (oncoming lane)
                let oncoming = o.variant < 0
                let lc = oncoming ? Radiance(1, 0.97, 0.85) : Radiance(0.9, 0.08, 0.05)
                cv.rect(self, X0: X + s * (half - 0.12) - 0.12, X1: X + s * (half - 0.12) + 0.12, Y0: 0.65, Y1: 0.8, z: z - 0.03,
                        label: lab, color: oncoming ? Radiance(0.9, 0.9, 0.85) : Radiance(0.7, 0.1, 0.08), emit: lc)
                let (lx, ly) = project(X + s * (half - 0.12), 0.72, z)
                let att = min(1, 10 / z)
                lights.append((lx, ly, max(0.8, f * (oncoming ? 1.6 : 0.7) / z), lc.r * att, lc.g * att, lc.b * att))
            }
        case .person, .rider:
            let lab: UInt8 = o.kind == .person ? 11 : 12
            let hgt = o.size
            if o.kind == .rider {
                for s: Float in [-0.55, 0.55] {
                    cv.ellipse(self, X: X + s * 0.1, Y: 0.35, rx: 0.35, ry: 0.35, z: z + s, label: 18, color: Radiance(0.1, 0.1, 0.12), ring: 0.7)
                }
                cv.rect(self, X0: X - 0.04, X1: X + 0.04, Y0: 0.3, Y1: 0.95, z: z, label: 18, color: Radiance(0.6, 0.1, 0.1))
            }
            let base: Float = o.kind == .rider ? 0.55 : 0
            let legs = Radiance(0.15, 0.15, 0.25).scaled(Float(1 + o.variant) * 0.6)
            cv.rect(self, X0: X - 0.17, X1: X + 0.17, Y0: base, Y1: base + hgt * 0.5, z: z, label: lab, color: legs,
                    shade: { u, _ in abs(u - 0.5) < 0.06 ? 0.6 : 1 })
            cv.rect(self, X0: X - 0.23, X1: X + 0.23, Y0: base + hgt * 0.5, Y1: base + hgt * 0.84, z: z - 0.01, label: lab, color: c)
            cv.ellipse(self, X: X, Y: base + hgt * 0.92, rx: 0.11, ry: 0.13, z: z - 0.02, label: lab, color: Radiance(0.85, 0.68, 0.55))
        case .pole:
            let hgt = o.size
            cv.rect(self, X0: X - 0.08, X1: X + 0.08, Y0: 0, Y1: hgt, z: z, label: 5, color: c, shade: { u, _ in 0.8 + 0.4 * u })
            let toward: Float = X < roadShift ? 1 : -1
            switch o.variant {
            case 0:  // traffic sign
                cv.ellipse(self, X: X, Y: hgt - 0.5, rx: 0.35, ry: 0.35, z: z - 0.01, label: 7, color: Radiance(0.85, 0.1, 0.1))
                cv.ellipse(self, X: X, Y: hgt - 0.5, rx: 0.25, ry: 0.25, z: z - 0.02, label: 7, color: Radiance(0.95, 0.95, 0.95))
            case 1:  // rectangular sign
                cv.rect(self, X0: X - 0.35, X1: X + 0.35, Y0: hgt - 1.0, Y1: hgt - 0.3, z: z - 0.01, label: 7, color: Radiance(0.1, 0.3, 0.8),
                        shade: { u, v in (u < 0.1 || u > 0.9 || v < 0.1 || v > 0.9) ? 1.8 : 1 })
            case 2:  // traffic light
                cv.rect(self, X0: X - 0.16, X1: X + 0.16, Y0: hgt - 1.0, Y1: hgt, z: z - 0.01, label: 6, color: Radiance(0.12, 0.12, 0.1))
                let which = Int(hash2(Int32(X * 10), Int32(z * 10), noiseSeed) * 3)
                for k in 0..<3 {
                    let on = k == which
                    let lc = [Radiance(1, 0.1, 0.05), Radiance(1, 0.7, 0.05), Radiance(0.1, 1, 0.3)][k]
                    cv.ellipse(self, X: X, Y: hgt - 0.2 - Float(k) * 0.3, rx: 0.1, ry: 0.1, z: z - 0.02, label: 6,
                               color: on ? lc : lc.scaled(0.25))
                    if on {
                        let (lx, ly) = project(X, hgt - 0.2 - Float(k) * 0.3, z)
                        let att = min(1, 8 / z)
                        lights.append((lx, ly, max(0.8, f * 0.5 / z), lc.r * att, lc.g * att, lc.b * att))
                    }
                }
            default:  // street lamp: arm over the road, lamp head
                cv.rect(self, X0: min(X, X + toward * 1.5), X1: max(X, X + toward * 1.5), Y0: hgt - 0.1, Y1: hgt + 0.05, z: z,
                        label: 5, color: c)
                cv.rect(self, X0: X + toward * 1.5 - 0.25, X1: X + toward * 1.5 + 0.25, Y0: hgt - 0.25, Y1: hgt, z: z - 0.01,
                        label: 5, color: Radiance(0.8, 0.8, 0.7), emit: Radiance(1, 0.85, 0.55))
                let (lx, ly) = project(X + toward * 1.5, hgt - 0.2, z)
                let att = min(1, 15 / z)
                lights.append((lx, ly, max(1, f * 5 / z), att, 0.78 * att, 0.45 * att))
            }
        case .tree:
            let trunkH = o.size * 0.45
            cv.rect(self, X0: X - 0.15, X1: X + 0.15, Y0: 0, Y1: trunkH + 0.5, z: z, label: 8, color: Radiance(0.3, 0.2, 0.12))
            cv.ellipse(self, X: X, Y: trunkH + o.size * 0.3, rx: o.size * 0.32, ry: o.size * 0.36, z: z - 0.01, label: 8, color: c,
                       texture: noiseSeed &+ 99)
        }
    }
}
