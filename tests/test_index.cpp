// test_index
