import ChildProcesses
import Core
import Data
import Foundation
import HDF5
import Numerics
import XCTest

final class HDF5FileTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("hdf5-tests-\(getpid())-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// A tensor of `shape` with distinct, non-round values.
    func pattern(_ shape: [Int], seed: Float) -> Tensor {
        let n = shape.reduce(1, *)
        return Tensor(shape: shape, values: (0..<n).map { Float($0) * 0.37 - seed * 1.5 + 0.001 })
    }

    /// Runs a command-line tool and returns its standard output (fails the test when the
    /// tool is missing or fails).
    func runTool(_ name: String, _ arguments: [String]) throws -> String {
        let tool = try ChildProcess.tool(name, package: "hdf5-tools")
        let r = try ChildProcess.run(tool, arguments, timeout: 120, includeStandardError: false)
        XCTAssertEqual(r.status, 0, "\(name) \(arguments) failed")
        return r.output
    }

    // MARK: - Datasets

    func testTensorsOfEveryRankRoundTripWithTheirShapes() throws {
        let file = path("tensors.h5")
        let shapes: [String: [Int]] = [
            "scalar": [], "params/peft/scale": [1], "params/peft/f_t/weight": [5, 4],
            "params/peft/tokens": [3, 7, 4], "layer_00/spatial": [2, 3, 4, 5], "empty": [0, 3],
        ]
        let originals = shapes.mapValues { pattern($0, seed: Float($0.count)) }
        let writer = try HDF5File.create(file)
        for (name, tensor) in originals { try writer.write(tensor, to: name) }
        try writer.close()

        let reader = try HDF5File.open(file)
        for (name, tensor) in originals {
            let back = try reader.readTensor(name)
            XCTAssertEqual(back.shape, tensor.shape, name)
            XCTAssertEqual(back.array, tensor.array, name)
            XCTAssertEqual(try reader.datasetInfo(name), HDF5DatasetInfo(shape: tensor.shape, elementType: .float(bits: 32)))
        }
        XCTAssertTrue(reader.isGroup("params/peft"))
        XCTAssertTrue(reader.isDataset("/params/peft/f_t/weight"))
        XCTAssertEqual(try reader.children(of: "params/peft"),
                       [HDF5Child(name: "f_t", kind: .group), HDF5Child(name: "scale", kind: .dataset),
                        HDF5Child(name: "tokens", kind: .dataset)])
        XCTAssertEqual(try reader.datasetPaths(under: "params"),
                       ["params/peft/f_t/weight", "params/peft/scale", "params/peft/tokens"])

        let into = Tensor(zeros: [5, 4])
        try reader.read("params/peft/f_t/weight", into: into)
        XCTAssertEqual(into.array, originals["params/peft/f_t/weight"]!.array)
        XCTAssertThrowsError(try reader.read("params/peft/f_t/weight", into: Tensor(zeros: [4, 5]))) { error in
            XCTAssertTrue("\(error)".contains("/params/peft/f_t/weight: shape [5, 4] in the file, expected [4, 5]"), "\(error)")
        }
    }

    func testTypedArraysReportTheirElementTypes() throws {
        let file = path("typed.h5")
        let writer = try HDF5File.create(file)
        try writer.write([1.5, -2.25] as [Double], to: "d")
        try writer.write([Int64(-3), 4_000_000_000, 5, 6], shape: [2, 2], to: "g/i")
        try writer.write([UInt64.max, 1, 2, 3], to: "rng")
        try writer.write([UInt8(0), 255], to: "u8")
        try writer.close()

        let reader = try HDF5File.open(file)
        XCTAssertEqual(try reader.datasetInfo("d").elementType.description, "float64")
        XCTAssertEqual(try reader.datasetInfo("g/i"), HDF5DatasetInfo(shape: [2, 2], elementType: .signedInteger(bits: 64)))
        XCTAssertEqual(try reader.datasetInfo("rng").elementType.description, "uint64")
        XCTAssertEqual(try reader.datasetInfo("u8").elementType.description, "uint8")
        XCTAssertEqual(try reader.readUInt64Array("rng"), [UInt64.max, 1, 2, 3])
        XCTAssertEqual(try reader.readArray("g/i", as: Int64.self).values, [-3, 4_000_000_000, 5, 6])
        XCTAssertEqual(try reader.readArray("d", as: Double.self).values, [1.5, -2.25])
        // Reading converts the stored type to float32.
        XCTAssertEqual(try reader.readTensor("u8").array, [0, 255])
        XCTAssertEqual(try reader.readTensor("d").array, [1.5, -2.25])
    }

    func testDatasetsFilledInSlicesOfRows() throws {
        let file = path("rows.h5")
        let writer = try HDF5File.create(file)
        try writer.createDataset("layer_03/spatial", shape: [4, 2, 3])
        let rows = pattern([2, 2, 3], seed: 1)
        try writer.writeRows(rows, to: "layer_03/spatial", firstRow: 1)
        XCTAssertThrowsError(try writer.writeRows(rows, to: "layer_03/spatial", firstRow: 3))
        try writer.close()
        let back = try HDF5File.open(file).readTensor("layer_03/spatial")
        XCTAssertEqual(back.shape, [4, 2, 3])
        XCTAssertEqual(Array(back.array[0..<6]), [Float](repeating: 0, count: 6))
        XCTAssertEqual(Array(back.array[6..<18]), rows.array)
        XCTAssertEqual(Array(back.array[18..<24]), [Float](repeating: 0, count: 6))
    }

    func testRewritingADatasetReplacesIt() throws {
        let file = path("replace.h5")
        let rw = try HDF5File.create(file)
        try rw.write(pattern([3], seed: 1), to: "a/b")
        try rw.write(pattern([2, 2], seed: 2), to: "a/b")
        XCTAssertEqual(try rw.readTensor("a/b").array, pattern([2, 2], seed: 2).array)
        try rw.close()
        let again = try HDF5File(path: file, mode: .readWrite)
        try again.setAttribute("step", .int64(9), on: "a/b")
        try again.close()
        XCTAssertEqual(try HDF5File.open(file).int64Attribute("step", of: "a/b"), 9)
    }

    // MARK: - Attributes

    let attributes: [String: HDF5Attribute] = [
        "format": .string("causal-tune-checkpoint"),
        "config": .string("model:\n  backbone: {arch: dinov2_vits14}  # ✓ ünïcode\n"),
        "version": .int64(1),
        "grid": .int64s([32, 32]),
        "lr": .float64(1e-4),
        "betas": .float64s([0.9, 0.999]),
        "images": .strings(["a/b.png", "c d.jpg", "ünï.png"]),
        "rng": .uint64s([UInt64.max, 0, 12_345_678_901_234]),
    ]

    func testEveryAttributeTypeRoundTripsOnRootGroupsAndDatasets() throws {
        let file = path("attributes.h5")
        let writer = try HDF5File.create(file)
        try writer.write(pattern([2, 3], seed: 0), to: "params/head/linear/weight")
        for target in ["/", "params/head", "params/head/linear/weight"] {
            for (name, value) in attributes { try writer.setAttribute(name, value, on: target) }
        }
        try writer.setAttribute("version", .int64(2))  // replacing keeps one attribute
        try writer.close()

        let reader = try HDF5File.open(file)
        for target in ["/", "params/head", "params/head/linear/weight"] {
            XCTAssertEqual(try reader.attributeNames(of: target), attributes.keys.sorted(), target)
            for (name, value) in attributes where !(target == "/" && name == "version") {
                XCTAssertEqual(try reader.attribute(name, of: target), value, "\(target) \(name)")
            }
        }
        XCTAssertEqual(try reader.int64Attribute("version"), 2)
        XCTAssertEqual(try reader.stringAttribute("format"), "causal-tune-checkpoint")
        XCTAssertEqual(try reader.stringArrayAttribute("images"), ["a/b.png", "c d.jpg", "ünï.png"])
        XCTAssertEqual(try reader.int64ArrayAttribute("grid"), [32, 32])
        XCTAssertEqual(try reader.float64Attribute("lr"), 1e-4)
        XCTAssertEqual(try reader.float64ArrayAttribute("betas"), [0.9, 0.999])
        XCTAssertEqual(try reader.uint64ArrayAttribute("rng"), [UInt64.max, 0, 12_345_678_901_234])
        XCTAssertTrue(reader.hasAttribute("lr", on: "params/head"))
        XCTAssertFalse(reader.hasAttribute("missing"))
        XCTAssertThrowsError(try reader.int64Attribute("format")) { error in
            XCTAssertEqual("\(error)", "\(file): /: attribute 'format' is a string, expected an integer")
        }
        XCTAssertThrowsError(try reader.stringAttribute("missing", of: "params")) { error in
            XCTAssertEqual("\(error)", "\(file): /params: no attribute 'missing'")
        }
    }

    // MARK: - Readable by the HDF5 tools

    func testFilesReadBackWithTheHDF5CommandLineTools() throws {
        let file = path("tools.h5")
        let writer = try HDF5File.create(file)
        try writer.write(Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6.5]), to: "params/peft/f_t/weight")
        try writer.write(Tensor(shape: [1], values: [0.001]), to: "params/peft/scale")
        for (name, value) in attributes { try writer.setAttribute(name, value) }
        try writer.close()

        // h5ls aligns its columns; compare with runs of spaces collapsed.
        let listing = try runTool("h5ls", ["-r", file]).split(separator: "\n")
            .map { $0.split(separator: " ").joined(separator: " ") }
        XCTAssertEqual(listing, ["/ Group", "/params Group", "/params/peft Group", "/params/peft/f_t Group",
                                 "/params/peft/f_t/weight Dataset {2, 3}", "/params/peft/scale Dataset {1}"])

        let data = try runTool("h5dump", ["-d", "/params/peft/f_t/weight", file])
        XCTAssertTrue(data.contains("H5T_IEEE_F32LE"), data)
        XCTAssertTrue(data.contains("DATASPACE  SIMPLE { ( 2, 3 ) / ( 2, 3 ) }"), data)
        XCTAssertTrue(data.contains("(0,0): 1, 2, 3,"), data)
        XCTAssertTrue(data.contains("(1,0): 4, 5, 6.5"), data)

        let header = try runTool("h5dump", ["-A", file])
        XCTAssertTrue(header.contains("ATTRIBUTE \"format\""), header)
        XCTAssertTrue(header.contains("(0): \"causal-tune-checkpoint\""), header)
        XCTAssertTrue(header.contains("STRSIZE H5T_VARIABLE"), header)
        XCTAssertTrue(header.contains("CSET H5T_CSET_UTF8"), header)
        XCTAssertTrue(header.contains("(0): \"a/b.png\", \"c d.jpg\""), header)
        XCTAssertTrue(header.contains("(0): 32, 32"), header)
        XCTAssertTrue(header.contains("(0): 18446744073709551615, 0, 12345678901234"), header)
        XCTAssertTrue(header.contains("H5T_STD_I64LE"), header)
        XCTAssertTrue(header.contains("H5T_IEEE_F64LE"), header)
        XCTAssertTrue(header.contains("(0): 0.9, 0.999"), header)
    }

    // MARK: - Atomic writes

    func leftoverTemporaries() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.contains(".tmp-") }
    }

    func testAtomicWriteReplacesTheFileAndLeavesNoTemporary() throws {
        let file = path("checkpoint.h5")
        try HDF5File.writeAtomically(to: file) { try $0.setAttribute("step", .int64(1)) }
        let step = try HDF5File.writeAtomically(to: file) { f -> Int64 in
            try f.setAttribute("step", .int64(2))
            try f.write(pattern([4], seed: 3), to: "params/x")
            return 2
        }
        XCTAssertEqual(step, 2)
        XCTAssertEqual(try leftoverTemporaries(), [])
        let reader = try HDF5File.open(file)
        XCTAssertEqual(try reader.int64Attribute("step"), 2)
        XCTAssertEqual(try reader.readTensor("params/x").array, pattern([4], seed: 3).array)
    }

    func testFailedAtomicWriteKeepsTheOldFileAndRemovesTheTemporary() throws {
        let file = path("checkpoint.h5")
        try HDF5File.writeAtomically(to: file) { try $0.setAttribute("step", .int64(1)) }
        XCTAssertThrowsError(try HDF5File.writeAtomically(to: file) { f in
            try f.setAttribute("step", .int64(2))
            try f.write(pattern([1000], seed: 1), to: "params/big")
            throw CausalTuneError("simulated failure while writing")
        }) { error in
            XCTAssertEqual("\(error)", "simulated failure while writing")
        }
        XCTAssertEqual(try leftoverTemporaries(), [])
        let reader = try HDF5File.open(file)
        XCTAssertEqual(try reader.int64Attribute("step"), 1)
        XCTAssertFalse(reader.exists("params/big"))
    }

    func testAtomicWriteIntoAMissingDirectoryFailsWithItsPath() throws {
        let file = path("missing/dir/checkpoint.h5")
        XCTAssertThrowsError(try HDF5File.writeAtomically(to: file) { _ in }) { error in
            XCTAssertTrue("\(error)".contains("missing/dir/checkpoint.h5.tmp-"), "\(error)")
        }
    }

    func testAtomicTextWrite() throws {
        let file = path("config.yaml")
        try AtomicFile.write("a: 1\n", to: file)
        try AtomicFile.write("a: 2\n", to: file)
        XCTAssertEqual(try String(contentsOfFile: file, encoding: .utf8), "a: 2\n")
        XCTAssertEqual(try leftoverTemporaries(), [])
    }

    // MARK: - Bad files give one clear line

    func testMissingCorruptAndTruncatedFilesGiveOneClearLine() throws {
        let missing = path("nope.h5")
        XCTAssertThrowsError(try HDF5File.open(missing)) { XCTAssertEqual("\($0)", "\(missing): no such file") }

        let garbage = path("garbage.h5")
        try Data("this is not an HDF5 file at all".utf8).write(to: URL(fileURLWithPath: garbage))
        XCTAssertThrowsError(try HDF5File.open(garbage)) {
            XCTAssertEqual("\($0)", "\(garbage): not an HDF5 file (or its header is corrupt)")
        }

        let good = path("good.h5")
        let writer = try HDF5File.create(good)
        try writer.write(pattern([64, 64], seed: 2), to: "params/w")
        try writer.setAttribute("config", .string(String(repeating: "x", count: 4000)))
        try writer.close()
        let bytes = try Data(contentsOf: URL(fileURLWithPath: good))
        let truncated = path("truncated.h5")
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: truncated))
        do {
            let f = try HDF5File.open(truncated)
            _ = try f.readTensor("params/w")
            XCTFail("reading a truncated file succeeded")
        } catch {
            let message = "\(error)"
            XCTAssertTrue(message.hasPrefix(truncated + ": "), message)
            XCTAssertFalse(message.contains("\n"), message)
        }
    }

    func testMissingObjectsAreNamedWithFileAndPath() throws {
        let file = path("objects.h5")
        let writer = try HDF5File.create(file)
        try writer.write(pattern([2], seed: 0), to: "params/a")
        try writer.close()
        let reader = try HDF5File.open(file)
        XCTAssertThrowsError(try reader.readTensor("params/missing")) {
            XCTAssertEqual("\($0)", "\(file): /params/missing: no such dataset")
        }
        XCTAssertThrowsError(try reader.readTensor("params")) {
            XCTAssertEqual("\($0)", "\(file): /params: is a group, not a dataset")
        }
        XCTAssertThrowsError(try reader.children(of: "params/a")) {
            XCTAssertEqual("\($0)", "\(file): /params/a: is a dataset, not a group")
        }
        XCTAssertThrowsError(try reader.write(pattern([2], seed: 0), to: "params/b")) {
            XCTAssertTrue("\($0)".hasPrefix("\(file): /params/b: cannot create dataset"), "\($0)")
        }
    }
}
