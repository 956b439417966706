//! D1's rows read column by column, without serde: a row is the runtime's
//! object of column name → value, and a row type ([`d1_row!`]) reads each
//! of its fields from the column of the same name by the field's type
//! ([`Column`]). workers-rs converts rows through `serde_wasm_bindgen`,
//! whose code for each row type cost the `.wasm` more than the rows are
//! worth (README, "Size"); this reads the same values with the same rules.
use core::cell::{Cell, RefCell};
use std::collections::HashMap;

use wasm_bindgen::JsValue;
use worker::js_sys::Reflect;

/// One row as D1 returns it, and the first column that could not be read.
pub(crate) struct Columns {
    row: JsValue,
    bad: Cell<Option<&'static str>>,
}

/// The column (by name) that a row lacks, or holds a value of another type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadColumn(pub(crate) &'static str);

impl core::fmt::Display for BadColumn {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "column {} is missing or of another type", self.0)
    }
}

impl From<BadColumn> for worker::Error {
    fn from(bad: BadColumn) -> Self {
        worker::Error::RustError(bad.to_string())
    }
}

impl Columns {
    pub(crate) fn new(row: JsValue) -> Self {
        Columns {
            row,
            bad: Cell::new(None),
        }
    }

    /// The column `name`, read as `T`; a column that cannot be read is
    /// noted (see [`Columns::checked`]) and reads as `T`'s default, so a
    /// row type reads every field without an early return (whose clean-up
    /// of the fields read so far cost the `.wasm` more than the reads).
    pub(crate) fn get<T: Column + Default>(&self, name: &'static str) -> T {
        T::read(member(&self.row, name)).unwrap_or_else(|| {
            if self.bad.get().is_none() {
                self.bad.set(Some(name));
            }
            T::default()
        })
    }

    /// `read`, unless a column could not be read: then the first such.
    pub(crate) fn checked<T>(&self, read: T) -> Result<T, BadColumn> {
        match self.bad.get() {
            Some(name) => Err(BadColumn(name)),
            None => Ok(read),
        }
    }
}

/// `value`'s member `name` (`undefined` when absent or not an object),
/// by the isolate's cached key for `name`. Not inlined: one copy serves
/// every column type and member read.
#[inline(never)]
pub(super) fn member(value: &JsValue, name: &'static str) -> JsValue {
    with_key(name, |key| Reflect::get(value, key)).unwrap_or(JsValue::UNDEFINED)
}

/// `f` with the column name (or another member name of D1's answer) as a
/// JavaScript string, made once per isolate (a row type reads the same names
/// row after row) and lent, not copied.
pub(super) fn with_key<R>(name: &'static str, f: impl FnOnce(&JsValue) -> R) -> R {
    thread_local! {
        static KEYS: RefCell<HashMap<(usize, usize), JsValue>> = RefCell::new(HashMap::new());
    }
    KEYS.with(|keys| {
        let mut keys = keys.borrow_mut();
        let key = keys
            .entry((name.as_ptr() as usize, name.len()))
            .or_insert_with(|| JsValue::from_str(name));
        f(key)
    })
}

/// A value type a column can hold, as D1 gives it: text as a string,
/// integers and reals as a number, `NULL` as `null`.
pub(crate) trait Column: Sized {
    /// `None` when the value is not of this type (an absent column is
    /// `undefined`, which only an `Option` accepts).
    fn read(value: JsValue) -> Option<Self>;
}

impl Column for String {
    fn read(value: JsValue) -> Option<Self> {
        value.as_string()
    }
}

impl Column for f64 {
    fn read(value: JsValue) -> Option<Self> {
        value.as_f64()
    }
}

/// A whole number within ±(2^53 − 1): what D1 returns exactly.
impl Column for i64 {
    fn read(value: JsValue) -> Option<Self> {
        super::record::safe_integer(value.as_f64()?)
    }
}

/// `NULL`, or a column the statement does not select, is `None`.
impl<T: Column> Column for Option<T> {
    fn read(value: JsValue) -> Option<Self> {
        if value.is_null() || value.is_undefined() {
            Some(None)
        } else {
            T::read(value).map(Some)
        }
    }
}

/// A type read from one D1 row.
pub(crate) trait FromRow: Sized {
    fn from_row(row: &Columns) -> Result<Self, BadColumn>;
}

/// Declares a row type and its [`FromRow`]: each field is read from the
/// column of its name, by its type's [`Column`].
macro_rules! d1_row {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $($(#[$field_meta:meta])* $field:ident: $type:ty,)*
        }
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $($(#[$field_meta])* $field: $type,)*
        }

        impl $crate::store::row::FromRow for $name {
            fn from_row(
                row: &$crate::store::row::Columns,
            ) -> Result<Self, $crate::store::row::BadColumn> {
                let read = Self {
                    $($field: row.get(stringify!($field)),)*
                };
                row.checked(read)
            }
        }
    };
}
