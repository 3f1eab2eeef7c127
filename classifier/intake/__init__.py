"""What comes in: photos decoded and checked, inputs walked, URLs fetched, labelled datasets read, Camtrap DP packages read and checked against the standard's own schemas."""
