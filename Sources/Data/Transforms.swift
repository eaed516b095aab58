/// The mmseg training transforms, on 8-bit HWC images and label maps.
///
/// * `resize` — images bilinear with OpenCV `INTER_LINEAR` half-pixel centres
///   (`s = (d + ½)·n/m − ½`, clamped to the edge), labels nearest with OpenCV's
///   `INTER_NEAREST` rule (`Resample.nearest`), as mmcv's `imresize` does.
/// * `keepRatioSize` — mmcv `rescale_size(keep_ratio=True)`: factor
///   `min(max(W,H)/max(w,h), min(W,H)/min(w,h))`, new size `⌊w·f + ½⌋ × ⌊h·f + ½⌋`.
/// * `randomCropBox` — mmseg `RandomCrop(crop_size, cat_max_ratio)`: offsets uniform in
///   `0…max(h − ch, 0)`, `0…max(w − cw, 0)`; with `cat_max_ratio < 1` the crop is redrawn up to
///   10 times until it holds more than one class and no class covers `cat_max_ratio` or
///   more of its non-ignored (≠ 255) pixels; after 10 failures the last drawn box is kept.
/// * `flip` — horizontal, image and labels together (`RandomFlip(prob=0.5)`).
/// * `photoMetricDistortion` — mmseg `PhotoMetricDistortion` with its defaults: brightness
///   `+U(−32, 32)` (p ½); mode ∈ {0, 1} (p ½ each); if mode 1 contrast `×U(0.5, 1.5)` (p ½);
///   saturation `×U(0.5, 1.5)` in HSV (p ½); hue `+randint(−18, 18)` mod 180 in OpenCV's
///   8-bit HSV (p ½); if mode 0 contrast last. Every step clips to [0, 255] and truncates to
///   8 bits, as mmseg's `convert` does, so the image always stays in range.
/// * `normalize` — `(x − mean) / std` per RGB channel into a `[3, H, W]` slice of a tensor.
import Foundation
import ImageIO
import Numerics

public enum Transforms {
    /// mmcv `rescale_size` with `keep_ratio=True`.
    public static func keepRatioSize(width w: Int, height h: Int, scale: (width: Int, height: Int)) -> (width: Int, height: Int) {
        let longEdge = Double(max(scale.width, scale.height)), shortEdge = Double(min(scale.width, scale.height))
        let f = min(longEdge / Double(max(w, h)), shortEdge / Double(min(w, h)))
        return (Int(Double(w) * f + 0.5), Int(Double(h) * f + 0.5))
    }

    /// Bilinear resize (OpenCV `INTER_LINEAR` semantics, float weights, rounded).
    public static func resize(_ img: RGBImage, width ow: Int, height oh: Int) -> RGBImage {
        if ow == img.width && oh == img.height { return img }
        let w = img.width, h = img.height
        func taps(_ n: Int, _ m: Int) -> ([Int], [Int], [Float]) {
            let scale = Double(n) / Double(m)
            var i0 = [Int](repeating: 0, count: m), i1 = i0, wt = [Float](repeating: 0, count: m)
            for d in 0..<m {
                var s = (Double(d) + 0.5) * scale - 0.5
                if s < 0 { s = 0 }
                var i = Int(s)
                if i >= n - 1 { i = n - 1; s = Double(i) }
                i0[d] = i; i1[d] = min(i + 1, n - 1); wt[d] = Float(s - Double(i))
            }
            return (i0, i1, wt)
        }
        let (x0, x1, wx) = taps(w, ow), (y0, y1, wy) = taps(h, oh)
        var out = RGBImage(width: ow, height: oh)
        img.pixels.withUnsafeBufferPointer { src in
            out.pixels.withUnsafeMutableBufferPointer { dst in
                let s = src.baseAddress!, d = dst.baseAddress!
                Parallel.forEach(oh, grain: max(1, 16384 / max(ow, 1))) { rows in
                    for oy in rows {
                        let r0 = s + y0[oy] * w * 3, r1 = s + y1[oy] * w * 3, ly = wy[oy]
                        for ox in 0..<ow {
                            let a = x0[ox] * 3, b = x1[ox] * 3, lx = wx[ox]
                            for c in 0..<3 {
                                let top = Float(r0[a + c]) * (1 - lx) + Float(r0[b + c]) * lx
                                let bot = Float(r1[a + c]) * (1 - lx) + Float(r1[b + c]) * lx
                                d[(oy * ow + ox) * 3 + c] = UInt8(min(255, max(0, (top * (1 - ly) + bot * ly).rounded())))
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// Nearest-neighbour label resize (OpenCV rule; never blends ids).
    public static func resize(_ labels: LabelMap, width ow: Int, height oh: Int) -> LabelMap {
        if ow == labels.width && oh == labels.height { return labels }
        let out = Resample.nearest(labels.labels, height: labels.height, width: labels.width, outHeight: oh, outWidth: ow)
        return LabelMap(width: ow, height: oh, labels: out)
    }

    public struct Box: Equatable, Sendable { public var x: Int, y: Int, width: Int, height: Int
        public init(x: Int, y: Int, width: Int, height: Int) { self.x = x; self.y = y; self.width = width; self.height = height }
    }

    public static func crop(_ img: RGBImage, _ b: Box) -> RGBImage {
        var out = RGBImage(width: b.width, height: b.height)
        for y in 0..<b.height {
            let s = ((b.y + y) * img.width + b.x) * 3
            out.pixels.replaceSubrange((y * b.width * 3)..<((y + 1) * b.width * 3), with: img.pixels[s..<(s + b.width * 3)])
        }
        return out
    }

    public static func crop(_ lab: LabelMap, _ b: Box) -> LabelMap {
        var out = LabelMap(width: b.width, height: b.height)
        for y in 0..<b.height {
            let s = (b.y + y) * lab.width + b.x
            out.labels.replaceSubrange((y * b.width)..<((y + 1) * b.width), with: lab.labels[s..<(s + b.width)])
        }
        return out
    }

    /// mmseg `RandomCrop.generate_crop_bbox`.
    static func drawBox(width w: Int, height h: Int, cropWidth cw: Int, cropHeight ch: Int, rng: inout RandomGenerator) -> Box {
        let mh = max(h - ch, 0), mw = max(w - cw, 0)
        let oy = rng.integer(below: mh + 1), ox = rng.integer(below: mw + 1)
        return Box(x: ox, y: oy, width: min(cw, w), height: min(ch, h))
    }

    /// Whether a crop passes the `cat_max_ratio` test (more than one class, the largest
    /// covering less than `ratio` of the non-ignored pixels).
    public static func cropIsBalanced(_ lab: LabelMap, _ b: Box, catMaxRatio ratio: Float, ignore: UInt8 = 255) -> Bool {
        var hist = [Int](repeating: 0, count: 256)
        lab.labels.withUnsafeBufferPointer { p in
            for y in b.y..<(b.y + b.height) {
                let row = y * lab.width
                for x in b.x..<(b.x + b.width) { hist[Int(p[row + x])] += 1 }
            }
        }
        hist[Int(ignore)] = 0
        let nonzero = hist.filter { $0 > 0 }
        let total = nonzero.reduce(0, +)
        return nonzero.count > 1 && Float(nonzero.max()!) / Float(total) < ratio
    }

    /// mmseg `RandomCrop.crop_bbox` selection with `cat_max_ratio` (10 redraws).
    public static func randomCropBox(_ lab: LabelMap, cropWidth: Int, cropHeight: Int, catMaxRatio: Float,
                                     rng: inout RandomGenerator) -> Box {
        var box = drawBox(width: lab.width, height: lab.height, cropWidth: cropWidth, cropHeight: cropHeight, rng: &rng)
        if catMaxRatio < 1 {
            for _ in 0..<10 {
                if cropIsBalanced(lab, box, catMaxRatio: catMaxRatio) { break }
                box = drawBox(width: lab.width, height: lab.height, cropWidth: cropWidth, cropHeight: cropHeight, rng: &rng)
            }
        }
        return box
    }

    /// The centred crop (`augment: none`).
    public static func centerBox(width w: Int, height h: Int, cropWidth cw: Int, cropHeight ch: Int) -> Box {
        Box(x: max(w - cw, 0) / 2, y: max(h - ch, 0) / 2, width: min(cw, w), height: min(ch, h))
    }

    /// Horizontal flip of image and labels together.
    public static func flip(_ img: inout RGBImage, _ lab: inout LabelMap) {
        let w = img.width
        for y in 0..<img.height {
            for x in 0..<(w / 2) {
                let a = (y * w + x) * 3, b = (y * w + (w - 1 - x)) * 3
                for c in 0..<3 { img.pixels.swapAt(a + c, b + c) }
                lab.labels.swapAt(y * w + x, y * w + (w - 1 - x))
            }
        }
    }

    // MARK: PhotoMetricDistortion

    @inline(__always) static func convert(_ v: Float) -> UInt8 { UInt8(min(255, max(0, v))) }  // clip, truncate

    /// OpenCV 8-bit RGB → HSV (H in 0…179, S and V in 0…255).
    @inline(__always) static func rgbToHSV(_ r: UInt8, _ g: UInt8, _ b: UInt8) -> (UInt8, UInt8, UInt8) {
        let rf = Float(r), gf = Float(g), bf = Float(b)
        let v = max(rf, gf, bf), mn = min(rf, gf, bf), diff = v - mn
        let s: Float = v == 0 ? 0 : (diff * 255 / v).rounded()
        var h: Float = 0
        if diff > 0 {
            if v == rf { h = 60 * (gf - bf) / diff } else if v == gf { h = 120 + 60 * (bf - rf) / diff } else { h = 240 + 60 * (rf - gf) / diff }
            if h < 0 { h += 360 }
        }
        var hh = Int((h / 2).rounded())
        if hh >= 180 { hh -= 180 }
        return (UInt8(hh), UInt8(s), UInt8(v))
    }

    /// OpenCV 8-bit HSV → RGB.
    @inline(__always) static func hsvToRGB(_ h: UInt8, _ s: UInt8, _ v: UInt8) -> (UInt8, UInt8, UInt8) {
        let sf = Float(s) / 255, vf = Float(v) / 255
        var hf = Float(h) * 2 / 60
        if hf >= 6 { hf -= 6 }
        let i = Int(hf), f = hf - Float(i)
        let p = vf * (1 - sf), q = vf * (1 - sf * f), t = vf * (1 - sf * (1 - f))
        let (r, g, b): (Float, Float, Float)
        switch i {
        case 0: (r, g, b) = (vf, t, p)
        case 1: (r, g, b) = (q, vf, p)
        case 2: (r, g, b) = (p, vf, t)
        case 3: (r, g, b) = (p, q, vf)
        case 4: (r, g, b) = (t, p, vf)
        default: (r, g, b) = (vf, p, q)
        }
        return (UInt8(min(255, max(0, (r * 255).rounded()))), UInt8(min(255, max(0, (g * 255).rounded()))),
                UInt8(min(255, max(0, (b * 255).rounded()))))
    }

    public static func photoMetricDistortion(_ img: inout RGBImage, rng: inout RandomGenerator,
                                             brightnessDelta: Float = 32, contrastRange: (Float, Float) = (0.5, 1.5),
                                             saturationRange: (Float, Float) = (0.5, 1.5), hueDelta: Int = 18) {
        let n = img.width * img.height
        img.pixels.withUnsafeMutableBufferPointer { p in
            func affine(alpha: Float, beta: Float) {
                for i in 0..<p.count { p[i] = convert(Float(p[i]) * alpha + beta) }
            }
            func contrast() {
                if rng.integer(below: 2) == 1 { affine(alpha: rng.uniform(contrastRange.0, contrastRange.1), beta: 0) }
            }
            if rng.integer(below: 2) == 1 { affine(alpha: 1, beta: rng.uniform(-brightnessDelta, brightnessDelta)) }
            let mode = rng.integer(below: 2)
            if mode == 1 { contrast() }
            if rng.integer(below: 2) == 1 {
                let alpha = rng.uniform(saturationRange.0, saturationRange.1)
                for i in 0..<n {
                    let (h, s, v) = rgbToHSV(p[3 * i], p[3 * i + 1], p[3 * i + 2])
                    (p[3 * i], p[3 * i + 1], p[3 * i + 2]) = hsvToRGB(h, convert(Float(s) * alpha), v)
                }
            }
            if rng.integer(below: 2) == 1 {
                let delta = rng.integer(below: 2 * hueDelta) - hueDelta  // numpy randint(−18, 18): −18…17
                for i in 0..<n {
                    let (h, s, v) = rgbToHSV(p[3 * i], p[3 * i + 1], p[3 * i + 2])
                    let nh = UInt8(((Int(h) + delta) % 180 + 180) % 180)
                    (p[3 * i], p[3 * i + 1], p[3 * i + 2]) = hsvToRGB(nh, s, v)
                }
            }
            if mode == 0 { contrast() }
        }
    }

    /// Writes `(x − mean)/std` of `img` into `out[b]` (`out` is [B, 3, H, W]); pixels outside
    /// the image (when it is smaller than the tensor) are left as they are (0 = padding).
    public static func normalize(_ img: RGBImage, into out: Tensor, batch b: Int,
                                 mean: [Float] = ImageNormalization.imagenet.mean, std: [Float] = ImageNormalization.imagenet.std) {
        let H = out.shape[2], W = out.shape[3]
        let base = out.data + b * 3 * H * W
        let inv = std.map { 1 / $0 }
        img.pixels.withUnsafeBufferPointer { p in
            for y in 0..<min(H, img.height) {
                for x in 0..<min(W, img.width) {
                    let s = (y * img.width + x) * 3
                    for c in 0..<3 { base[(c * H + y) * W + x] = (Float(p[s + c]) - mean[c]) * inv[c] }
                }
            }
        }
    }
}
