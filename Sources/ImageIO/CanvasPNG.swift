import Core
import Foundation

/// Canvas ↔ the Data module's `RGBImage` (same byte layout: row-major, RGB interleaved)
/// and PNG files through its libpng writer.
extension Canvas {
    /// A canvas holding a copy of `image`.
    public init(_ image: RGBImage) {
        self.init(width: image.width, height: image.height, pixels: image.pixels)
    }

    /// The canvas as an `RGBImage`.
    public var rgbImage: RGBImage { RGBImage(width: width, height: height, pixels: pixels) }

    /// Writes the canvas as an 8-bit RGB PNG, creating the parent directory if needed.
    public func writePNG(to path: String) throws {
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty && !FileManager.default.fileExists(atPath: dir) {
            do {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            } catch {
                throw CausalTuneError("\(dir): cannot create output directory")
            }
        }
        try ImageIO.writePNG(rgbImage, to: path)
    }
}
