//! `RandomHorizontalFlip`'s op.

use image::RgbImage;
use image::imageops;

/// Mirrors left–right (the `image` crate's `flip_horizontal_in_place`).
pub fn hflip(img: &mut RgbImage) {
    imageops::flip_horizontal_in_place(img);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_columns() {
        let mut img = RgbImage::from_vec(3, 1, vec![1, 1, 1, 2, 2, 2, 3, 3, 3]).unwrap();
        hflip(&mut img);
        assert_eq!(img.into_raw(), vec![3, 3, 3, 2, 2, 2, 1, 1, 1]);
    }
}
