import Foundation
import Synchronization

/// A dense, row-major Float32 array that carries its shape.
///
/// `Tensor` is a small value that *refers* to storage (like a pointer with a shape):
/// copying a `Tensor` does not copy its elements, and writing through `data` is seen by
/// every copy. Layers use it the way llm.c uses its activation arena: buffers are
/// allocated once and written in place by forward and backward passes. Use `clone()` for
/// an independent copy.
// @unchecked: a reference to shared storage by design; parallel kernels write disjoint ranges.
public struct Tensor: CustomStringConvertible, @unchecked Sendable {
    /// The dimensions, outermost first (`[B, T, C]`).
    public let shape: [Int]
    /// The number of elements (`shape.reduce(1, *)`).
    public let count: Int
    /// The owner of the elements; shared by views and copies.
    public let storage: TensorStorage
    /// Where this tensor's first element sits in `storage`.
    public let offset: Int

    /// A new zero-filled tensor.
    public init(zeros shape: [Int]) {
        let n = Tensor.elementCount(shape)
        self.shape = shape
        self.count = n
        self.storage = TensorStorage(count: n)
        self.offset = 0
    }

    /// A new tensor holding `values` (row-major); `values.count` must match the shape.
    public init(shape: [Int], values: [Float]) {
        self.init(zeros: shape)
        precondition(values.count == count, "Tensor(shape: \(shape)) given \(values.count) values")
        values.withUnsafeBufferPointer { src in
            data.update(from: src.baseAddress!, count: count)
        }
    }

    /// A new tensor filled with `value`.
    public init(shape: [Int], repeating value: Float) {
        self.init(zeros: shape)
        data.update(repeating: value, count: count)
    }

    private init(shape: [Int], storage: TensorStorage, offset: Int) {
        self.shape = shape
        self.count = Tensor.elementCount(shape)
        self.storage = storage
        self.offset = offset
    }

    /// The first element; valid while any copy of this tensor is alive.
    @inline(__always) public var data: UnsafeMutablePointer<Float> { storage.pointer + offset }

    /// The elements as a buffer pointer.
    @inline(__always) public var buffer: UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: data, count: count)
    }

    /// The number of dimensions.
    public var rank: Int { shape.count }

    /// A view of the same elements under another shape with the same element count.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        precondition(Tensor.elementCount(newShape) == count, "cannot reshape \(shape) to \(newShape)")
        return Tensor(shape: newShape, storage: storage, offset: offset)
    }

    /// A view of the `index`-th slice along the first dimension (`t[index]`).
    public func slice(_ index: Int) -> Tensor {
        precondition(rank >= 1 && index >= 0 && index < shape[0], "slice \(index) out of range for \(shape)")
        let inner = Array(shape.dropFirst())
        let n = Tensor.elementCount(inner)
        return Tensor(shape: inner, storage: storage, offset: offset + index * n)
    }

    /// A view of rows `range` along the first dimension.
    public func rows(_ range: Range<Int>) -> Tensor {
        precondition(rank >= 1 && range.lowerBound >= 0 && range.upperBound <= shape[0], "rows \(range) out of range for \(shape)")
        var s = shape
        s[0] = range.count
        let n = count / Swift.max(shape[0], 1)
        return Tensor(shape: s, storage: storage, offset: offset + range.lowerBound * n)
    }

    /// An independent copy of the elements.
    public func clone() -> Tensor {
        let t = Tensor(zeros: shape)
        t.data.update(from: data, count: count)
        return t
    }

    /// The elements copied into an array (for tests, files and small data).
    public var array: [Float] { Array(buffer) }

    /// Sets every element to zero.
    public func zero() { data.update(repeating: 0, count: count) }

    /// Sets every element to `value`.
    public func fill(_ value: Float) { data.update(repeating: value, count: count) }

    /// Copies `other`'s elements into this tensor (same element count).
    public func copy(from other: Tensor) {
        precondition(other.count == count, "copy of \(other.shape) into \(shape)")
        data.update(from: other.data, count: count)
    }

    /// Element at a multi-index (slow; for tests and diagnostics).
    public subscript(_ index: Int...) -> Float {
        get { data[flatIndex(index)] }
        nonmutating set { data[flatIndex(index)] = newValue }
    }

    private func flatIndex(_ index: [Int]) -> Int {
        precondition(index.count == shape.count, "index \(index) for shape \(shape)")
        var flat = 0
        for (i, d) in zip(index, shape) {
            precondition(i >= 0 && i < d, "index \(index) out of range for \(shape)")
            flat = flat * d + i
        }
        return flat
    }

    public var description: String { "Tensor\(shape)" }

    /// The product of the dimensions. A shape from a file goes through `checkedElementCount`
    /// first; here a negative or overflowing shape is a programming error.
    public static func elementCount(_ shape: [Int]) -> Int {
        guard let n = checkedElementCount(shape) else {
            preconditionFailure("shape \(shape) has a negative dimension or more elements than memory can hold")
        }
        return n
    }

    /// The product of the dimensions, or nil when a dimension is negative, the product
    /// overflows, or it exceeds `limit` elements (readers call this before allocating).
    public static func checkedElementCount(_ shape: [Int], limit: Int = Tensor.maxElements) -> Int? {
        var n = 1
        for d in shape {
            guard d >= 0 else { return nil }
            let (p, overflow) = n.multipliedReportingOverflow(by: d)
            guard !overflow else { return nil }
            n = p
        }
        // A zero dimension makes the product 0 whatever came before; the check above
        // already refused an overflowing prefix.
        return n <= limit ? n : nil
    }

    /// The most elements one tensor may have: 2^40 floats (4 TiB) keeps byte counts
    /// (`count * 4`) and every offset within `Int` and is far beyond any real tensor.
    public static let maxElements = 1 << 40
}

/// 64-byte aligned Float storage owned by one or more `Tensor` values.
// @unchecked: owns raw memory; who writes which range is the kernels' contract, as for Tensor.
public final class TensorStorage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int

    /// Storages created since the process started. Layers promise to allocate nothing per
    /// step once warmed up; tests hold them to it by reading this before and after a step.
    /// (One relaxed atomic add per allocation: nothing next to the allocation itself.)
    public static var allocationCount: Int { allocations.load(ordering: .relaxed) }
    private static let allocations = Atomic<Int>(0)

    public init(count: Int) {
        precondition(count >= 0 && count <= Tensor.maxElements, "TensorStorage of \(count) elements")
        self.count = count
        let bytes = Swift.max(count, 1) * MemoryLayout<Float>.stride
        let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        raw.initializeMemory(as: Float.self, repeating: 0, count: Swift.max(count, 1))
        pointer = raw.assumingMemoryBound(to: Float.self)
        TensorStorage.allocations.wrappingAdd(1, ordering: .relaxed)
    }

    deinit { UnsafeMutableRawPointer(pointer).deallocate() }
}
