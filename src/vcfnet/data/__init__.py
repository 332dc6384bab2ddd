"""From radiographs and boxes to a dataset: manifest, patient split, crops, transforms."""
