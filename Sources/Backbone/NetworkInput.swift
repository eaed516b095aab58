import Numerics

/// The network input of reference §Training: RGB bytes resized bilinearly (`align_corners=False`) to
/// `size × size` and normalised, by default with ImageNet's statistics (`ImageNormalization`).
public enum NetworkInput {

    /// pixels: interleaved RGB, `height × width × 3` → [3, size, size] written into `output`
    /// (a [3, size, size] view, e.g. one image of a batch).
    public static func write(pixels: [UInt8], width: Int, height: Int, size: Int, into output: Tensor,
                             normalization: ImageNormalization = .imagenet) {
        precondition(pixels.count == width * height * 3 && output.count == 3 * size * size,
                     "NetworkInput: \(pixels.count) bytes for \(width)×\(height), output \(output.shape)")
        let planes = Tensor(zeros: [1, 3, height, width])
        pixels.withUnsafeBufferPointer { p in
            let d = planes.data, n = width * height
            for i in 0..<n {
                d[i] = Float(p[3 * i]); d[n + i] = Float(p[3 * i + 1]); d[2 * n + i] = Float(p[3 * i + 2])
            }
        }
        let target = output.reshaped([1, 3, size, size])
        if width == size && height == size {
            target.copy(from: planes)
        } else {
            Resample.bilinear(planes, into: target)
        }
        let n = size * size
        for c in 0..<3 {
            let d = target.data + c * n, m = normalization.mean[c], s = normalization.std[c]
            for i in 0..<n { d[i] = (d[i] - m) / s }
        }
    }
}
