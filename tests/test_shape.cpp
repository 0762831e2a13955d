// test_shape
