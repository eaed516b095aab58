/// The typed collective operations, built on the `Communicator` primitives, once for every
/// element type the primitives move (`CommunicatorScalar`: Float, Double, Int64, UInt64, UInt8):
///
///     allReduceSum(x):   x ← Σ_p x_p            (buffers, arrays, single values, tensors)
///     allReduceMax/Min:  x ← max_p / min_p x_p  (single values)
///     allReduceMean(x):  x ← (1/P) Σ_p x_p      (Float buffers and tensors)
///     broadcast(x):      x ← x_root
///     allGather(v):      [v_0, v_1, …, v_{P−1}]
import Foundation
import Numerics

/// An element type the primitives move: plain bits, one `CommunicatorElement` each.
public protocol CommunicatorScalar: BitwiseCopyable {
    static var communicatorElement: CommunicatorElement { get }
}

extension Float: CommunicatorScalar { public static var communicatorElement: CommunicatorElement { .float32 } }
extension Double: CommunicatorScalar { public static var communicatorElement: CommunicatorElement { .float64 } }
extension Int64: CommunicatorScalar { public static var communicatorElement: CommunicatorElement { .int64 } }
extension UInt64: CommunicatorScalar { public static var communicatorElement: CommunicatorElement { .uint64 } }
extension UInt8: CommunicatorScalar { public static var communicatorElement: CommunicatorElement { .byte } }

extension Communicator {
    // MARK: - All-reduce (in place)

    /// Reduces `buffer` across ranks with `operation`, in place.
    public func allReduce<T: CommunicatorScalar>(_ buffer: UnsafeMutableBufferPointer<T>, _ operation: ReduceOperation) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        allReduceRaw(base, count: buffer.count, element: T.communicatorElement, operation: operation)
    }

    /// Sums `buffer` across ranks, in place (e.g. confusion matrices).
    public func allReduceSum<T: CommunicatorScalar>(_ buffer: UnsafeMutableBufferPointer<T>) { allReduce(buffer, .sum) }

    /// Sums `values` across ranks, in place.
    public func allReduceSum<T: CommunicatorScalar>(_ values: inout [T]) {
        values.withUnsafeMutableBufferPointer { allReduce($0, .sum) }
    }

    /// Sums `tensor`'s elements across ranks, in place.
    public func allReduceSum(_ tensor: Tensor) { allReduceSum(tensor.buffer) }

    /// Averages `buffer` across ranks, in place (sum, then × 1/size).
    public func allReduceMean(_ buffer: UnsafeMutableBufferPointer<Float>) {
        allReduceSum(buffer)
        if size > 1 {
            let scale = 1 / Float(size)
            for i in buffer.indices { buffer[i] *= scale }
        }
    }

    /// Averages `tensor`'s elements across ranks, in place.
    public func allReduceMean(_ tensor: Tensor) { allReduceMean(tensor.buffer) }

    /// Averages `values` across ranks, in place.
    public func allReduceMean(_ values: inout [Float]) {
        values.withUnsafeMutableBufferPointer { allReduceMean($0) }
    }

    /// `value` reduced over ranks with `operation`.
    public func allReduce<T: CommunicatorScalar>(_ value: T, _ operation: ReduceOperation) -> T {
        var v = value
        withUnsafeMutablePointer(to: &v) { allReduceRaw($0, count: 1, element: T.communicatorElement, operation: operation) }
        return v
    }

    /// The sum of `value` over ranks.
    public func allReduceSum<T: CommunicatorScalar>(_ value: T) -> T { allReduce(value, .sum) }

    /// The largest `value` over ranks (e.g. "did any rank see a non-finite loss": 0/1).
    public func allReduceMax<T: CommunicatorScalar>(_ value: T) -> T { allReduce(value, .max) }

    /// The smallest `value` over ranks.
    public func allReduceMin<T: CommunicatorScalar>(_ value: T) -> T { allReduce(value, .min) }

    /// Whether `flag` is true on any rank.
    public func any(_ flag: Bool) -> Bool { allReduceMax(flag ? Int64(1) : 0) != 0 }

    // MARK: - Broadcast

    /// Overwrites `buffer` with `root`'s elements (every rank passes the same count).
    public func broadcast<T: CommunicatorScalar>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int = 0) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        broadcastRaw(base, count: buffer.count, element: T.communicatorElement, root: root)
    }

    /// `root`'s value on every rank.
    public func broadcast<T: CommunicatorScalar>(_ value: T, root: Int = 0) -> T {
        var v = value
        withUnsafeMutablePointer(to: &v) { broadcast(UnsafeMutableBufferPointer(start: $0, count: 1), root: root) }
        return v
    }

    /// `root`'s value on every rank.
    public func broadcast(_ value: Int, root: Int = 0) -> Int {
        Int(broadcast(Int64(value), root: root))
    }

    /// Overwrites `tensor`'s elements with `root`'s (same shape on every rank).
    public func broadcast(_ tensor: Tensor, root: Int = 0) { broadcast(tensor.buffer, root: root) }

    /// `root`'s array on every rank (the length is sent first; other ranks' input is
    /// ignored).
    public func broadcast<T: CommunicatorScalar>(_ values: [T], root: Int = 0) -> [T] {
        let n = broadcast(values.count, root: root)
        if rank == root {
            var out = values
            out.withUnsafeMutableBufferPointer { broadcast($0, root: root) }
            return out
        }
        return [T](unsafeUninitializedCapacity: n) { buffer, initialized in
            // Plain bits: the broadcast initialises every element.
            broadcast(buffer, root: root)
            initialized = n
        }
    }

    /// `root`'s string on every rank (e.g. the resolved config text).
    public func broadcast(_ text: String, root: Int = 0) -> String {
        String(decoding: broadcast(Array(text.utf8), root: root), as: UTF8.self)
    }

    // MARK: - All-gather

    /// Every rank's `value`, in rank order.
    public func allGather<T: CommunicatorScalar>(_ value: T) -> [T] {
        var input = value
        return [T](unsafeUninitializedCapacity: size) { output, initialized in
            withUnsafePointer(to: &input) {
                allGatherRaw($0, output.baseAddress!, count: 1, element: T.communicatorElement)
            }
            initialized = size
        }
    }

    /// Every rank's `value`, in rank order.
    public func allGather(_ value: Int) -> [Int] { allGather(Int64(value)).map { Int($0) } }
}
