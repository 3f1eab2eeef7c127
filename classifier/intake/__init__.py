"""What comes in: photos decoded and checked, inputs walked, URLs fetched, labelled datasets read."""
