import Data
import ImageIO

/// Segmentation pictures: predictions in the Cityscapes palette, an
/// overlay on the input, and an error map.
///
/// * `colorize`: train id `k < 19` → `Cityscapes.palette[k]`, anything else (255 =
///   ignore) → black.
/// * `overlay`: `out = (1 − α)·image + α·colour(label)` per pixel, ignored pixels keep the
///   image.
/// * `errorMap`: ignored ground truth (255, or any id ≥ 19 — the pixels `ConfusionMatrix`
///   skips) → black, prediction ≠ ground truth → red (255, 0, 0), correct → the
///   ground-truth colour dimmed to 35 % (so the scene stays readable; no dimmed palette
///   colour is red or black).
public enum SegmentationPicture {
    static func colour(_ label: UInt8) -> RGB {
        let k = Int(label)
        guard k < Cityscapes.palette.count else { return .black }
        let p = Cityscapes.palette[k]
        return RGB(p.0, p.1, p.2)
    }

    /// The label map in the Cityscapes palette.
    public static func colorize(_ labels: LabelMap) -> Canvas {
        var c = Canvas(width: labels.width, height: labels.height, background: .black)
        c.pixels.withUnsafeMutableBufferPointer { p in
            for i in 0..<(labels.width * labels.height) {
                let col = colour(labels.labels[i])
                p[3 * i] = col.r; p[3 * i + 1] = col.g; p[3 * i + 2] = col.b
            }
        }
        return c
    }

    /// The palette colours blended over `image` with opacity `alpha` (same size).
    public static func overlay(_ image: RGBImage, _ labels: LabelMap, alpha: Double = 0.5) -> Canvas {
        precondition(image.width == labels.width && image.height == labels.height,
                     "overlay: image \(image.width)×\(image.height), labels \(labels.width)×\(labels.height)")
        var c = Canvas(image)
        for i in 0..<(labels.width * labels.height) where labels.labels[i] < 255 {
            c.blend(i % labels.width, i / labels.width, colour(labels.labels[i]), alpha: alpha)
        }
        return c
    }

    /// Red where `prediction ≠ groundTruth`, black where the ground truth is ignored (255 or
    /// any id outside the palette), the dimmed ground-truth colour elsewhere.
    public static func errorMap(prediction: LabelMap, groundTruth: LabelMap) -> Canvas {
        precondition(prediction.width == groundTruth.width && prediction.height == groundTruth.height,
                     "errorMap: prediction and ground truth differ in size")
        var c = Canvas(width: groundTruth.width, height: groundTruth.height, background: .black)
        for i in 0..<(groundTruth.width * groundTruth.height) {
            let g = groundTruth.labels[i]
            let col: RGB
            if Int(g) >= Cityscapes.palette.count {
                col = .black
            } else if prediction.labels[i] != g {
                col = RGB(255, 0, 0)
            } else {
                let t = colour(g)
                col = RGB(UInt8(Double(t.r) * 0.35), UInt8(Double(t.g) * 0.35), UInt8(Double(t.b) * 0.35))
            }
            c.pixels[3 * i] = col.r; c.pixels[3 * i + 1] = col.g; c.pixels[3 * i + 2] = col.b
        }
        return c
    }
}
