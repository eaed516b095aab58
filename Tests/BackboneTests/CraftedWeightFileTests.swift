import Backbone
import Foundation
import HDF5
import XCTest

/// Crafted weight files (the shapes of the fault probes that once crashed the readers):
/// each must give one clear line naming the file, never a trap, an out-of-bounds read or a
/// huge allocation.
final class CraftedWeightFileTests: XCTestCase {
    // MARK: a `torch.save` archive built by hand

    /// Pickle opcodes for a one-tensor state dict `{name: tensor}`.
    static func statePickle(name: String = "cls_token", storageCount: Int = 16, offset: Int = 0,
                            shape: [Int] = [1, 1, 16], strides: [Int] = [16, 16, 1]) -> [UInt8] {
        var p: [UInt8] = [0x80, 0x02, 0x7D, 0x28]                         // PROTO 2, {, MARK
        p += unicode(name)
        p += global("torch._utils", "_rebuild_tensor_v2")
        p += [0x28, 0x28]                                                 // MARK (args), MARK (pid)
        p += unicode("storage") + global("torch", "FloatStorage") + unicode("0") + unicode("cpu") + long(storageCount)
        p += [0x74, 0x51]                                                 // TUPLE, BINPERSID
        p += long(offset)
        p += [0x28] + shape.flatMap(long) + [0x74]
        p += [0x28] + strides.flatMap(long) + [0x74]
        p += [0x89] + global("collections", "OrderedDict") + [0x29, 0x52] // False, OrderedDict()
        p += [0x74, 0x52, 0x75, 0x2E]                                     // TUPLE, REDUCE, SETITEMS, STOP
        return p
    }

    static func unicode(_ s: String) -> [UInt8] {
        let b = Array(s.utf8)
        return [0x58] + le(UInt64(b.count), 4) + b
    }

    static func global(_ module: String, _ name: String) -> [UInt8] {
        [0x63] + Array(module.utf8) + [0x0A] + Array(name.utf8) + [0x0A]
    }

    static func long(_ v: Int) -> [UInt8] { [0x8A, 0x08] + le(UInt64(bitPattern: Int64(v)), 8) }

    static func le(_ v: UInt64, _ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }

    /// A zip archive with stored (uncompressed) entries, as `torch.save` writes.
    static func zip(_ entries: [(String, [UInt8])]) -> [UInt8] {
        var out: [UInt8] = [], central: [UInt8] = []
        for (name, data) in entries {
            let n = Array(name.utf8), crc = crc32(data), offset = out.count
            out += le(0x0403_4B50, 4) + le(20, 2) + le(0, 2) + le(0, 2) + le(0, 4) + le(UInt64(crc), 4)
            out += le(UInt64(data.count), 4) + le(UInt64(data.count), 4) + le(UInt64(n.count), 2) + le(0, 2) + n + data
            central += le(0x0201_4B50, 4) + le(20, 2) + le(20, 2) + le(0, 2) + le(0, 2) + le(0, 4) + le(UInt64(crc), 4)
            central += le(UInt64(data.count), 4) + le(UInt64(data.count), 4) + le(UInt64(n.count), 2)
            central += le(0, 2) + le(0, 2) + le(0, 2) + le(0, 2) + le(0, 4) + le(UInt64(offset), 4) + n
        }
        let cdOffset = out.count
        out += central
        out += le(0x0605_4B50, 4) + le(0, 2) + le(0, 2) + le(UInt64(entries.count), 2) + le(UInt64(entries.count), 2)
        out += le(UInt64(central.count), 4) + le(UInt64(cdOffset), 4) + le(0, 2)
        return out
    }

    static func crc32(_ data: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in data {
            c ^= UInt32(b)
            for _ in 0..<8 { c = (c >> 1) ^ (0xEDB8_8320 & (0 &- (c & 1))) }
        }
        return ~c
    }

    static func pth(_ pickle: [UInt8], storageBytes: Int = 64, name: String) -> String {
        Fixtures.temporaryFile(zip([("archive/data.pkl", pickle), ("archive/byteorder", Array("little".utf8)),
                                    ("archive/data/0", [UInt8](repeating: 0, count: storageBytes))]), name: name)
    }

    // MARK: PyTorch archives

    func testHandMadeArchiveReads() throws {
        // The helper itself is right: a well-formed archive reads.
        let path = Self.pth(Self.statePickle(), name: "good.pth")
        let file = try WeightFile.read(path)
        XCTAssertEqual(file.tensors["cls_token"]?.shape, [1, 1, 16])
    }

    /// A fuzzer-found zip whose ZIP64 directory offset is beyond `Int64.max`: ZIPFoundation
    /// would trap converting it to `off_t`; the directory check refuses it first.
    func testZIP64DirectoryOffsetBeyondTheFileIsRefused() {
        let path = Fixtures.path("zip64_directory_offset.pth")
        assertCausalTuneError([path, "outside the file"]) { _ = try WeightFile.read(path) }
    }

    func testNegativeStrideIsRefused() {
        let path = Self.pth(Self.statePickle(strides: [16, 16, -1]), name: "negstride.pth")
        assertCausalTuneError([path, "negative"]) { _ = try WeightFile.read(path) }
    }

    func testNegativeOffsetIsRefused() {
        let path = Self.pth(Self.statePickle(offset: -3), name: "negoffset.pth")
        assertCausalTuneError([path, "negative"]) { _ = try WeightFile.read(path) }
    }

    func testOffsetNearIntMaxIsRefused() {
        let path = Self.pth(Self.statePickle(offset: Int.max - 2), name: "bigoffset.pth")
        assertCausalTuneError([path, "reaches past its storage"]) { _ = try WeightFile.read(path) }
    }

    func testStrideProductOverflowIsRefused() {
        let path = Self.pth(Self.statePickle(shape: [3, 2], strides: [Int.max / 2, 1]), name: "bigstride.pth")
        assertCausalTuneError([path, "reaches past its storage"]) { _ = try WeightFile.read(path) }
    }

    func testHugeShapeIsRefusedBeforeAllocating() {
        let huge = Self.pth(Self.statePickle(shape: [1 << 31, 1 << 31], strides: [0, 0]), name: "hugeshape.pth")
        assertCausalTuneError([huge, "more than"]) { _ = try WeightFile.read(huge) }
        let overflow = Self.pth(Self.statePickle(shape: [1 << 40, 1 << 40, 1 << 40], strides: [0, 0, 0]), name: "overflow.pth")
        assertCausalTuneError([overflow]) { _ = try WeightFile.read(overflow) }
        // Within the size bound but more elements than the storage holds (a broadcast view).
        let broadcast = Self.pth(Self.statePickle(shape: [1000, 1000], strides: [0, 0]), name: "broadcast.pth")
        assertCausalTuneError([broadcast, "reaches past its storage"]) { _ = try WeightFile.read(broadcast) }
    }

    func testStorageCountOverflowIsRefused() {
        let path = Self.pth(Self.statePickle(storageCount: Int.max / 2), name: "bigstorage.pth")
        assertCausalTuneError([path, "truncated"]) { _ = try WeightFile.read(path) }
    }

    func testArchitectureShapeIsCheckedBeforeReading() {
        let path = Self.pth(Self.statePickle(), name: "wrongarch.pth")
        let wide = BackboneArchitecture(name: "wide", channels: 32, depth: 1, heads: 2, feedForward: .mlp(hidden: 64), registers: 0)
        assertCausalTuneError([path, "'cls_token'", "[1, 1, 16]", "wide expects [1, 1, 32]"]) {
            _ = try BackboneWeights.read(path, for: wide)
        }
    }

    func testHugeLengthFieldsAreRefused() {
        // BINUNICODE8 and BINBYTES8 with a length of 2^64 − 1, BINUNICODE with 2^32 − 1.
        for (op, n) in [(UInt8(0x8D), 8), (0x8E, 8), (0x58, 4), (0x42, 4)] {
            let pickle: [UInt8] = [0x80, 0x02, op] + [UInt8](repeating: 0xFF, count: n) + [0x2E]
            let path = Self.pth(pickle, name: "length-\(op).pth")
            assertCausalTuneError([path, "exceeds"]) { _ = try WeightFile.read(path) }
        }
    }

    func testDeepNestingIsRefusedWithoutRecursion() {
        // ( ) then TUPLE1 a million times: a tuple nested 10^6 deep.
        var deep: [UInt8] = [0x80, 0x02, 0x29]
        deep += [UInt8](repeating: 0x85, count: 1_000_000)
        deep += [0x2E]
        let path = Self.pth(deep, name: "deep.pth")
        assertCausalTuneError([path, "nested more than"]) { _ = try WeightFile.read(path) }
        // Lists appended into memoised lists after the fact cannot hide their depth.
        var hidden: [UInt8] = [0x80, 0x02]
        for i in 0..<150 {
            hidden += [0x5D, 0x71, UInt8(i % 256)]                    // [] memo i
            if i > 0 { hidden += [0x68, UInt8((i - 1) % 256), 0x61] } // APPEND previous list
        }
        hidden += [0x2E]
        let hiddenPath = Self.pth(hidden, name: "hidden-depth.pth")
        assertCausalTuneError([hiddenPath, "nested more than"]) { _ = try WeightFile.read(hiddenPath) }
    }

    func testCyclicListIsRefused() {
        // l = []; l.append(l)
        let pickle: [UInt8] = [0x80, 0x02, 0x5D, 0x71, 0x00, 0x68, 0x00, 0x61, 0x2E]
        let path = Self.pth(pickle, name: "cycle.pth")
        assertCausalTuneError([path, "itself"]) { _ = try WeightFile.read(path) }
    }

    func testZipEntryClaimingMoreThanTheFileIsRefused() {
        var bytes = Self.zip([("archive/data.pkl", Self.statePickle()), ("archive/data/0", [UInt8](repeating: 0, count: 64))])
        // Patch the central directory's uncompressed size of data.pkl to 2^32 − 1.
        let signature: [UInt8] = [0x50, 0x4B, 0x01, 0x02]
        if let at = (0..<(bytes.count - 4)).first(where: { Array(bytes[$0..<($0 + 4)]) == signature }) {
            for i in 0..<4 { bytes[at + 24 + i] = 0xFF }
        }
        let path = Fixtures.temporaryFile(bytes, name: "bigentry.pth")
        assertCausalTuneError([path]) { _ = try WeightFile.read(path) }
    }

    // MARK: safetensors

    static func safetensors(_ header: String, data: Int = 64) -> [UInt8] {
        let h = Array(header.utf8)
        return le(UInt64(h.count), 8) + h + [UInt8](repeating: 0, count: data)
    }

    func testSafetensorsOffsetsAndShapesNearIntMaxAreRefused() {
        let cases = [
            #"{"a": {"dtype": "F32", "shape": [4], "data_offsets": [9223372036854775800, 9223372036854775807]}}"#,
            #"{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, -9223372036854775807]}}"#,
            #"{"a": {"dtype": "F32", "shape": [2147483648, 2147483648], "data_offsets": [0, 16]}}"#,
            #"{"a": {"dtype": "F32", "shape": [4611686018427387904, 4], "data_offsets": [0, 0]}}"#,
            #"{"a": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}}"#,
            #"{"a": {"dtype": "F32", "shape": [4], "data_offsets": [16, 0]}}"#,
        ]
        for (i, header) in cases.enumerated() {
            let path = Fixtures.temporaryFile(Self.safetensors(header), name: "crafted-\(i).safetensors")
            assertCausalTuneError([path]) { _ = try WeightFile.read(path) }
        }
    }

    // MARK: HDF5

    func testHugeHDF5DatasetIsCheckedBeforeReading() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("huge-\(getpid()).h5").path
        let file = try HDF5File.create(path)
        try file.createDataset("cls_token", shape: [100_000, 100_000])   // never written: a small file
        try file.close()
        XCTAssertLessThan(((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0, 1 << 20)
        assertCausalTuneError([path, "'cls_token'", "[100000, 100000]", "tiny_s14 expects [1, 1, 16]"]) {
            _ = try BackboneWeights.read(path, for: Fixtures.s14)
        }
        assertCausalTuneError([path, "'cls_token'", "more than"]) { _ = try WeightFile.read(path) }
    }
}
