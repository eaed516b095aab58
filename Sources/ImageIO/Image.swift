/// Images and label maps in memory, and their files.
///
///   RGBImage  [H, W, 3] UInt8, row-major, channel-last (HWC), RGB order
///   LabelMap  [H, W]    UInt8 class ids (train ids after mapping; 255 = ignore)
///
/// Reading: PNG through libpng (8/16-bit grey, grey+alpha, RGB, RGBA, palette → RGB via the
/// simplified `png_image` API; alpha is dropped by compositing onto black), JPEG through
/// libjpeg-turbo (`tjDecompress2` to RGB). Label maps are read with libpng's low-level API
/// so that palette PNGs keep their raw indices (the simplified API would turn a palette
/// into colours). Writing: PNG (RGB or 8-bit grey). A file that is missing, truncated or
/// not an image throws one `CausalTuneError` naming it.
import CPNG
import CTurboJPEG
import Core
import Foundation

/// An 8-bit RGB image, HWC.
public struct RGBImage: Equatable, Sendable {
    public var width: Int
    public var height: Int
    /// `height * width * 3` bytes, row-major, RGB interleaved.
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * 3, "RGBImage: pixel count does not match size")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    public init(width: Int, height: Int, fill: UInt8 = 0) {
        self.init(width: width, height: height, pixels: [UInt8](repeating: fill, count: width * height * 3))
    }

    /// The `c`-th channel of pixel (y, x) — slow, for tests.
    public subscript(y: Int, x: Int, c: Int) -> UInt8 {
        get { pixels[(y * width + x) * 3 + c] }
        set { pixels[(y * width + x) * 3 + c] = newValue }
    }
}

/// An 8-bit label map, HW.
public struct LabelMap: Equatable, Sendable {
    public var width: Int
    public var height: Int
    /// `height * width` ids, row-major.
    public var labels: [UInt8]

    public init(width: Int, height: Int, labels: [UInt8]) {
        precondition(labels.count == width * height, "LabelMap: label count does not match size")
        self.width = width
        self.height = height
        self.labels = labels
    }

    public init(width: Int, height: Int, fill: UInt8 = 255) {
        self.init(width: width, height: height, labels: [UInt8](repeating: fill, count: width * height))
    }

    public subscript(y: Int, x: Int) -> UInt8 {
        get { labels[y * width + x] }
        set { labels[y * width + x] = newValue }
    }
}

/// File I/O for `RGBImage` and `LabelMap`.
///
/// Every decoder reads the header first and refuses an image with more than `maxPixels`
/// pixels before allocating anything for it: a few hundred bytes of PNG or JPEG can claim
/// 100 000 × 100 000 pixels (a 30 GB allocation).
public enum ImageIO {
    /// The most pixels (width × height) an image may have: `CAUSAL_TUNE_MAX_IMAGE_PIXELS`
    /// when set to a positive integer, else 2^28 (268 M pixels, e.g. 16 384 × 16 384 — far
    /// above any driving dataset's frames).
    public static var maxPixels: Int {
        if let v = ProcessInfo.processInfo.environment["CAUSAL_TUNE_MAX_IMAGE_PIXELS"], let n = Int(v), n > 0 { return n }
        return 1 << 28
    }

    /// Refuses `width × height` above `maxPixels` (or non-positive) with one line naming the file.
    static func checkDimensions(_ path: String, width: Int, height: Int) throws {
        guard width > 0, height > 0 else { throw CausalTuneError("\(path): image header gives an empty size \(width)×\(height)") }
        let limit = maxPixels
        let (pixels, overflow) = width.multipliedReportingOverflow(by: height)
        guard !overflow, pixels <= limit else {
            throw CausalTuneError("\(path): image header claims \(width)×\(height) pixels, more than the limit of \(limit) (corrupt file? raise CAUSAL_TUNE_MAX_IMAGE_PIXELS for really large images)")
        }
    }

    /// Reads a PNG or JPEG (chosen by the file's magic bytes, not its name) as RGB.
    public static func readRGB(_ path: String) throws -> RGBImage {
        let kind = try sniff(path)
        switch kind {
        case .png: return try readPNGRGB(path)
        case .jpeg: return try readJPEG(path)
        }
    }

    /// Reads a single-channel 8-bit PNG label map (greyscale values or raw palette indices).
    public static func readLabels(_ path: String) throws -> LabelMap {
        guard FileManager.default.fileExists(atPath: path) else {
            throw CausalTuneError("\(path): label file not found")
        }
        // The size from the header first: the decoder below allocates what the header says.
        if (try? sniff(path)) == .png {
            let (hw, hh) = try size(path)
            try checkDimensions(path, width: hw, height: hh)
        }
        var w: UInt32 = 0, h: UInt32 = 0
        var out: UnsafeMutablePointer<UInt8>? = nil
        var err = [CChar](repeating: 0, count: 256)
        let rc = ct_png_read_index(path, &w, &h, &out, &err)
        guard rc == 0, let data = out else {
            let msg = String(decoding: err.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw CausalTuneError("\(path): cannot read label map: \(msg)")
        }
        defer { ct_png_free(data) }
        let n = Int(w) * Int(h)
        let labels = [UInt8](UnsafeBufferPointer(start: data, count: n))
        return LabelMap(width: Int(w), height: Int(h), labels: labels)
    }

    /// Reads only the size (width, height) of a PNG or JPEG, without decoding the pixels.
    public static func size(_ path: String) throws -> (width: Int, height: Int) {
        switch try sniff(path) {
        case .png:
            var image = png_image()
            image.version = UInt32(ct_png_image_version())
            guard png_image_begin_read_from_file(&image, path) != 0 else {
                throw CausalTuneError("\(path): not a readable PNG: \(pngMessage(&image))")
            }
            defer { png_image_free(&image) }
            return (Int(image.width), Int(image.height))
        case .jpeg:
            let bytes = try readFile(path)
            guard let handle = tjInitDecompress() else { throw CausalTuneError("\(path): cannot start libjpeg-turbo") }
            defer { tjDestroy(handle) }
            let (w, h) = try jpegHeader(path, bytes, handle)
            return (Int(w), Int(h))
        }
    }

    /// The width and height a JPEG's header declares (both positive).
    static func jpegHeader(_ path: String, _ bytes: [UInt8], _ handle: tjhandle) throws -> (Int32, Int32) {
        var w: Int32 = 0, h: Int32 = 0, sub: Int32 = 0, cs: Int32 = 0
        let rc = bytes.withUnsafeBufferPointer {
            tjDecompressHeader3(handle, $0.baseAddress, UInt(bytes.count), &w, &h, &sub, &cs)
        }
        guard rc == 0, w > 0, h > 0 else {
            throw CausalTuneError("\(path): not a readable JPEG: \(String(cString: tjGetErrorStr2(handle)))")
        }
        return (w, h)
    }

    /// Writes an RGB image as an 8-bit RGB PNG.
    public static func writePNG(_ image: RGBImage, to path: String) throws {
        try writePNG(bytes: image.pixels, width: image.width, height: image.height, channels: 3, path: path)
    }

    /// Writes a label map as an 8-bit greyscale PNG (values are the ids).
    public static func writePNG(_ labels: LabelMap, to path: String) throws {
        try writePNG(bytes: labels.labels, width: labels.width, height: labels.height, channels: 1, path: path)
    }

    // MARK: - Internals

    enum Kind { case png, jpeg }

    static func sniff(_ path: String) throws -> Kind {
        guard let fh = FileHandle(forReadingAtPath: path) else {
            if FileManager.default.fileExists(atPath: path) { throw CausalTuneError("\(path): cannot open image file") }
            throw CausalTuneError("\(path): image file not found")
        }
        defer { try? fh.close() }
        let head = [UInt8](fh.readData(ofLength: 8))
        if head.count >= 8 && head[0] == 0x89 && head[1] == 0x50 && head[2] == 0x4E && head[3] == 0x47 { return .png }
        if head.count >= 3 && head[0] == 0xFF && head[1] == 0xD8 && head[2] == 0xFF { return .jpeg }
        throw CausalTuneError("\(path): not a PNG or JPEG image")
    }

    static func readFile(_ path: String) throws -> [UInt8] {
        guard let d = FileManager.default.contents(atPath: path) else { throw CausalTuneError("\(path): cannot read file") }
        return [UInt8](d)
    }

    static func pngMessage(_ image: inout png_image) -> String {
        withUnsafeBytes(of: &image.message) { raw in
            let bytes = raw.bindMemory(to: UInt8.self)
            return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    static func readPNGRGB(_ path: String) throws -> RGBImage {
        var image = png_image()
        image.version = UInt32(ct_png_image_version())
        guard png_image_begin_read_from_file(&image, path) != 0 else {
            throw CausalTuneError("\(path): not a readable PNG: \(pngMessage(&image))")
        }
        let w = Int(image.width), h = Int(image.height)
        do { try checkDimensions(path, width: w, height: h) } catch {
            png_image_free(&image)
            throw error
        }
        // Decodes into `buffer` (row stride `w · 3` samples); frees the image on failure.
        func finishRead<Sample>(into buffer: inout [Sample]) throws {
            let ok = buffer.withUnsafeMutableBytes { buf in
                png_image_finish_read(&image, nil, buf.baseAddress, Int32(w * 3), nil)
            }
            if ok == 0 {
                let msg = pngMessage(&image)
                png_image_free(&image)
                throw CausalTuneError("\(path): corrupt or truncated PNG: \(msg)")
            }
        }
        if image.format & 0x04 != 0 {
            // 16-bit file: the simplified API treats 16-bit data as linear light and would
            // gamma-encode it to 8 bits; read the 16-bit values unchanged and round to 8 bits.
            image.format = ct_png_format_rgb() | 0x04  // PNG_FORMAT_FLAG_LINEAR
            var wide = [UInt16](repeating: 0, count: w * h * 3)
            try finishRead(into: &wide)
            return RGBImage(width: w, height: h, pixels: wide.map { UInt8((UInt32($0) + 128) / 257) })
        }
        image.format = ct_png_format_rgb()
        var pixels = [UInt8](repeating: 0, count: w * h * 3)
        try finishRead(into: &pixels)
        return RGBImage(width: w, height: h, pixels: pixels)
    }

    static func readJPEG(_ path: String) throws -> RGBImage {
        let bytes = try readFile(path)
        guard let handle = tjInitDecompress() else { throw CausalTuneError("\(path): cannot start libjpeg-turbo") }
        defer { tjDestroy(handle) }
        let (w, h) = try jpegHeader(path, bytes, handle)
        try checkDimensions(path, width: Int(w), height: Int(h))
        var pixels = [UInt8](repeating: 0, count: Int(w) * Int(h) * 3)
        let rc2 = bytes.withUnsafeBufferPointer { src in
            pixels.withUnsafeMutableBufferPointer { dst in
                tjDecompress2(handle, src.baseAddress, UInt(bytes.count), dst.baseAddress, w, Int32(w) * 3, h,
                              ct_tjpf_rgb(), ct_tjflag_accuratedct())
            }
        }
        guard rc2 == 0 else {
            throw CausalTuneError("\(path): corrupt or truncated JPEG: \(String(cString: tjGetErrorStr2(handle)))")
        }
        return RGBImage(width: Int(w), height: Int(h), pixels: pixels)
    }

    static func writePNG(bytes: [UInt8], width: Int, height: Int, channels: Int, path: String) throws {
        var image = png_image()
        image.version = UInt32(ct_png_image_version())
        image.width = UInt32(width)
        image.height = UInt32(height)
        image.format = channels == 3 ? ct_png_format_rgb() : ct_png_format_gray()
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty && !FileManager.default.fileExists(atPath: dir) {
            do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
                throw CausalTuneError("\(dir): cannot create directory: \(error.localizedDescription)")
            }
        }
        let ok = bytes.withUnsafeBytes { buf in
            png_image_write_to_file(&image, path, 0, buf.baseAddress, Int32(width * channels), nil)
        }
        if ok == 0 {
            let msg = pngMessage(&image)
            png_image_free(&image)
            throw CausalTuneError("\(path): cannot write PNG: \(msg)")
        }
    }
}
