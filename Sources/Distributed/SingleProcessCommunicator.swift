/// The communicator of a run not started by an MPI launcher: one rank, and every
/// collective is the identity (a sum over one rank is the value itself; gathering copies).
/// MPI is never initialised, so the debug mode works on a laptop without `mpirun`.
import Foundation

// @unchecked: as its base class; it holds no mutable state of its own.
public final class SingleProcessCommunicator: Communicator, @unchecked Sendable {
    public init() {
        super.init(rank: 0, size: 1, localRank: 0, localSize: 1)
    }

    override public func barrier() {}

    override public func broadcastRaw(_ pointer: UnsafeMutableRawPointer, count: Int, element: CommunicatorElement,
                                      root: Int) {
        precondition(root == 0, "broadcast root \(root) in a single-process run")
    }

    override public func allReduceRaw(_ pointer: UnsafeMutableRawPointer, count: Int, element: CommunicatorElement,
                                      operation: ReduceOperation) {}

    override public func allGatherRaw(_ input: UnsafeRawPointer, _ output: UnsafeMutableRawPointer, count: Int,
                                      element: CommunicatorElement) {
        output.copyMemory(from: input, byteCount: count * element.size)
    }
}
