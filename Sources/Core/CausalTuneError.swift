import Foundation

/// An error meant for the user: one clear line that names the file or key at fault.
///
/// Every failure caused by input (files, configs, command-line values) is thrown as this
/// type; the CLI prints `message` and exits non-zero. Programming errors stay
/// preconditions.
public struct CausalTuneError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension CausalTuneError {
    /// Writes `message` as one line on standard error (what the CLI shows before exiting 1).
    public func printToStandardError() {
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }
}
