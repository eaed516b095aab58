// The Training module; its files arrive with their issues.
