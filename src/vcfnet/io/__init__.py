"""Reading and writing the files hospitals have: DICOM, PNG/JPEG, LabelImg (Pascal VOC) XML."""
