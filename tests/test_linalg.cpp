// test_linalg
