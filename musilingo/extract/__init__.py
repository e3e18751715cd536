"""The extraction job (`musilingo extract`): audio -> frozen encoder -> Zarr feature cache."""
