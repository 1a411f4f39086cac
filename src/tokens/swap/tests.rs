use super::*;

#[test]
fn check_file_info_loses_the_upstream_token_and_gains_mobile_properties() {
    let up = "eyJ.up+stream/token=";
    let body = serde_json::json!({
        "BaseFileName": "a:b?.docx", "OwnerId": "o#1", "UserId": "u/1", "Size": 5,
        "Version": "v1", "SupportsCoauth": false, "AccessTokenExpiry": 5, "ServerTime": 6,
        "HostEditUrl": format!("https://office/edit?WOPISrc=x&access_token={}", encoded(up)),
        "DownloadUrl": format!("https://gw/wopi/iop/download?access_token={}", encoded(up)),
        "Raw": up,
    });
    let out = check_file_info(
        body.to_string().as_bytes(),
        up,
        "wg1.GATEWAY",
        Some(MobileAmend {
            flags: MobileFlags {
                is_edu_user: false,
                license_check_for_edit: true,
            },
            user_id: "u/1",
        }),
        Decided {
            can_not_write_relative: true,
            supports_rename: false,
            user_can_rename: false,
        },
    )
    .unwrap();
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(!text.contains("eyJ.up"), "{text}");
    assert!(!text.contains(&encoded(up)), "{text}");
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        v["HostEditUrl"],
        "https://office/edit?WOPISrc=x&access_token=wg1.GATEWAY"
    );
    assert_eq!(v["Raw"], "wg1.GATEWAY");
    assert!(v.get("DownloadUrl").is_none());
    for k in CSPP_PLUS_ONLY {
        assert!(v.get(*k).is_none(), "{k}");
    }
    assert_eq!(v["IsEduUser"], false);
    assert_eq!(v["LicenseCheckForEditIsEnabled"], true);
    assert_eq!(v["SupportsContainers"], true);
    assert_eq!(v["SupportsEcosystem"], true);
    assert_eq!(v["BaseFileName"], "a-b-.docx");
    assert_eq!(v["OwnerId"], "o-1");
    assert_eq!(v["UserId"], "u-1");
    // Web holders keep the wopiserver's property set (minus the token).
    let rename = Decided {
        can_not_write_relative: false,
        supports_rename: true,
        user_can_rename: true,
    };
    let web = check_file_info(body.to_string().as_bytes(), up, "wg1.G", None, rename).unwrap();
    let v: Value = serde_json::from_slice(&web).unwrap();
    assert_eq!(v["SupportsCoauth"], false);
    assert!(v.get("IsEduUser").is_none());
    assert_eq!(
        (&v["SupportsRename"], &v["UserCanRename"]),
        (&true.into(), &true.into())
    );
    assert!(check_file_info(b"not json", up, "g", None, rename).is_none());
}

#[test]
fn pass_through_answers_keep_their_token_and_say_what_the_gateway_decides() {
    // The wopiserver with `enablerename` on says true; the gateway does not rename for it.
    let body = br#"{"BaseFileName":"a.docx","SupportsRename":true,"UserCanRename":true,"HostEditUrl":"https://o/e?access_token=eyJwopiserver.token.sig"}"#;
    let no = Decided {
        can_not_write_relative: true,
        supports_rename: false,
        user_can_rename: false,
    };
    let out = pass_through_check_file_info(body, no).unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["SupportsRename"], false);
    assert_eq!(v["UserCanRename"], false);
    assert_eq!(v["UserCanNotWriteRelative"], true);
    assert_eq!(
        v["HostEditUrl"],
        "https://o/e?access_token=eyJwopiserver.token.sig"
    );
    // The tree path (escapes in the body) says the same.
    let escaped = br#"{"BaseFileName":"caf\u00e9.docx","SupportsRename":true}"#;
    let v: Value =
        serde_json::from_slice(&pass_through_check_file_info(escaped, no).unwrap()).unwrap();
    assert_eq!(
        (&v["SupportsRename"], &v["BaseFileName"]),
        (&false.into(), &"café.docx".into())
    );
    assert!(pass_through_check_file_info(b"[1]", no).is_none());
}

#[test]
fn put_relative_hands_out_a_gateway_token_for_the_new_file() {
    let caller = Claims {
        grant: Grant::File(FileGrant {
            resource: Resource {
                storage_id: "st".into(),
                space_id: "sp".into(),
                opaque_id: "old".into(),
            },
            app: Some("Collabora".into()),
            view_mode: crate::wopi::ViewMode::ReadWrite,
        }),
        user: Default::default(),
        mobile: false,
        exp: 123,
        login: crate::tokens::gateway::Login {
            iat: 100,
            sid: Some("s1".into()),
            sub: None,
        },
    };
    let new_inode = inode_of(&Resource {
        storage_id: "st".into(),
        space_id: String::new(),
        opaque_id: "new-file".into(),
    });
    let up = "eyJnew.upstream.token";
    let body = serde_json::json!({
        "Name": "copy.docx",
        "Url": format!("https://gw/wopi/files/{new_inode}?access_token={}", encoded(up)),
        "HostEditUrl": format!("https://office/edit?access_token={}", encoded(up)),
        "HostViewUrl": format!("https://office/view?access_token={up}"),
    });
    let issued = std::cell::RefCell::new(Vec::new());
    let out = put_relative(body.to_string().as_bytes(), &caller, |c| {
        issued.borrow_mut().push(c.clone());
        "wg1.NEW".to_owned()
    })
    .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(!text.contains("eyJnew"), "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v["Url"],
        format!("https://gw/wopi/files/{new_inode}?access_token=wg1.NEW")
    );
    assert_eq!(v["HostViewUrl"], "https://office/view?access_token=wg1.NEW");
    let new = &issued.borrow()[0];
    let f = new.file().unwrap();
    assert_eq!(
        (f.resource.opaque_id.as_str(), f.resource.space_id.as_str()),
        ("new-file", "sp")
    );
    assert_eq!((new.exp, f.app.as_deref()), (123, Some("Collabora")));
    // Without a usable Url nothing is passed on.
    assert!(put_relative(br#"{"Name":"x"}"#, &caller, |_| String::new()).is_none());
}

#[test]
fn a_token_is_found_by_its_tail_exactly_where_the_whole_token_is() {
    let long = format!(
        "eyJhbGciOiJIUzI1NiJ9.{}.sig-{}",
        "p".repeat(300),
        "s".repeat(40)
    );
    let tail_only = &long[long.len() - TAIL_BYTES - 5..];
    assert_eq!(TokenFinder::new("").find_iter(b"anything").count(), 0);
    for token in [long.as_str(), "short-tok", "aaaa"] {
        for hay in [
            token.to_owned(),
            format!("x{token}y{token}"),
            format!("{token}{token}"),
            format!("{tail_only}|{token}|{tail_only}"),
            format!("no token here {}", &token[1..]),
            format!("aaaaaaaaa{token}"),
        ] {
            let want: Vec<usize> = hay.match_indices(token).map(|(i, _)| i).collect();
            let got: Vec<usize> = TokenFinder::new(token).find_iter(hay.as_bytes()).collect();
            assert_eq!(got, want, "token {token:.12}… in {hay:.40}…");
        }
    }
}

#[test]
fn the_upstream_target_names_the_inode_and_carries_the_upstream_token() {
    let r = Resource {
        storage_id: "st".into(),
        space_id: "sp".into(),
        opaque_id: "op".into(),
    };
    let t = upstream_target(
        "/wopi/files/GATEWAYID/contents",
        "access_token=wg1.x&access_token_ttl=5",
        &r,
        "eyJ a+b",
    );
    assert_eq!(
        t,
        format!(
            "/wopi/files/{}/contents?access_token=eyJ+a%2Bb&access_token_ttl=5",
            inode_of(&r)
        )
    );
    let t = upstream_target("/wopi/files/GATEWAYID", "", &r, "t");
    assert_eq!(t, format!("/wopi/files/{}?", inode_of(&r)));
}
