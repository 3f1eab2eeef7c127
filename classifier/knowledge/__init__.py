"""What the project knows about animals: species notes, taxonomy, geography (countries and ranges), look-alikes, and sunrise and sunset."""
