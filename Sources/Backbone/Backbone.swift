// The Backbone module; its files arrive with their issues.
