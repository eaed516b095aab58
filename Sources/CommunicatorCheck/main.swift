print("communicator-check: pending")
