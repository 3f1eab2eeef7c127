"""What the project knows about animals: species notes, taxonomy, geography (countries and ranges) and look-alikes."""
