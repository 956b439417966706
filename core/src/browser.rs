//! Runs this crate's unit tests in a headless browser (Chromium or Firefox,
//! picked by `CHROMEDRIVER` / `GECKODRIVER`) under `wasm-bindgen-test-runner`.
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);
